"""scripts/demo.py, the README's `make demo`, on a few hours: it runs, reports, and a second
run duplicates nothing in Salesforce (R11)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_demo(out: Path) -> str:
    env = {**os.environ, "DEMO_OUT": str(out), "DEMO_HOURS": "9-10"}
    for name in [k for k in env if k.startswith("AIRFLOW")]:
        del env[name]  # the demo makes its own AIRFLOW_HOME, as on a fresh machine
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def day_total(output: str) -> list[int]:
    (line,) = [line for line in output.splitlines() if line.startswith("day total")]
    return [int(n) for n in line.split()[2:]]


def test_the_demo_syncs_the_hours_prints_the_totals_and_a_rerun_creates_nothing(tmp_path):
    first = run_demo(tmp_path)
    events, tasks, created, updated, relations, individual, _rejected = day_total(first)
    assert events > 0 and tasks > 0
    assert created == tasks and updated == 0 and relations > 0
    assert individual > tasks  # shared mode made fewer Tasks (R13)
    assert "Shared Activities made" in first and "Rejected by reason:" in first
    report = re.search(r"Audit report: (\S+)", first).group(1)
    assert Path(report).is_file()

    second = run_demo(tmp_path)
    assert day_total(second)[:6] == [events, tasks, 0, tasks, 0, individual]
