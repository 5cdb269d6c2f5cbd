"""scripts/demo.py, the README's `make demo`, on a few hours: it runs, reports in plain
words with Airflow's own logs kept out of the terminal, ends with the audit's verdict, and a
second run duplicates nothing in Salesforce: no Task, Salesforce Event or relation made
twice (R11, R14)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_demo(out: Path) -> str:
    env = {**os.environ, "DEMO_OUT": str(out), "DEMO_HOURS": "11-12"}  # hours with meetings (R14)
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


def test_r14_the_demo_syncs_the_hours_reports_in_plain_words_and_a_rerun_creates_nothing(
    tmp_path,
):
    first = run_demo(tmp_path)
    (
        events,
        left_out,
        tasks,
        created,
        updated,
        relations,
        individual,
        sf_events,
        sf_created,
        sf_updated,
        sf_relations,
        instead,
        left_off,
    ) = day_total(first)
    assert events > 0 and tasks > 0 and left_off > 0
    assert created == tasks and updated == 0 and relations > 0
    assert individual > tasks  # shared mode made fewer Tasks (R13)
    # The generated day has meetings: Salesforce Events made once, their people related once.
    assert sf_events > 0 and sf_created == sf_events and sf_updated == 0 and sf_relations > 0
    assert instead > sf_events
    assert "fewer Tasks." in first and "Left off or out, by reason:" in first
    assert "Meetings made" in first
    report = re.search(r"Audit report: (\S+)", first).group(1)
    assert Path(report).is_file()

    # No Airflow log line, warning or traceback in the terminal; they went to files.
    for noise in ("[info", "[warning", "[error", "Warning:", "Traceback", "DagBag", "alembic"):
        assert noise not in first, noise
    logs = tmp_path / "logs"
    assert "[info" in (logs / "demo.log").read_text()
    assert sorted(p.name for p in logs.glob("hourly-*.log")) == [
        "hourly-20261126T11.log",
        "hourly-20261126T12.log",
    ]
    assert first.count("What the columns count:") == 1
    assert "  relations+  TaskRelation rows inserted beyond the primary" in first
    # Only hours 11 and 12 ran, on a day that is over: the audit says so, naming the hours.
    verdict = next(line for line in first.splitlines() if line.startswith("Audit verdict"))
    assert verdict.startswith("Audit verdict (bad): Incomplete: 22 of 24 hours not synced (19:00")
    assert "(00:00–11:00 UTC)" in verdict
    assert "alert [coverage]" in first

    second = run_demo(tmp_path)
    assert day_total(second)[:12] == [
        events,
        left_out,
        tasks,
        0,
        tasks,
        0,
        individual,
        sf_events,
        0,
        sf_events,
        0,
        instead,
    ]
