"""scripts/screenshots.py on a small lake: the README's pictures come from the real report
and the real page, rendered by Chromium."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from audit_days import DAY, NOW, ORG, sample_day
from browser import requires_chromium

from activity_sync import audit

ROOT = Path(__file__).resolve().parents[2]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@requires_chromium
def test_the_script_shoots_the_report_and_the_page_from_a_lake(tmp_path: Path) -> None:
    lake_root = tmp_path / "lake"
    sample_day(lake_root)
    audit.run_audit(lake_root, ORG, DAY, now=NOW)
    out = tmp_path / "img"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--lake", str(lake_root)]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _png_size(out / "audit-report.png") == (1200, 1500)
    assert _png_size(out / "audit-page.png") == (1200, 400)


def test_the_script_refuses_a_lake_without_reports(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--lake", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "no audit report under" in done.stderr or "no Chromium" in done.stderr
