"""Screenshots of the audit report and the Activity audit page, for the README.

    .venv/bin/python scripts/screenshots.py              # runs the demo for two days first
    .venv/bin/python scripts/screenshots.py --lake demo_out/lake

Without ``--lake`` it runs ``scripts/demo.py`` twice into a temporary folder: a whole day
(2026-11-26) and the first hours of the next (an incomplete day, as the page should show
it). Then it takes, with headless Chromium, ``docs/img/audit-report.png`` (the newest
complete day's report, else the newest report) and ``docs/img/audit-page.png`` (the list as
the UI plugin renders it, by the plugin's own code). Nothing is drawn by hand: rerun it
after changing the report or the page.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("ACTIVITY_SYNC_CHROMIUM", "/usr/bin/chromium"))
# (day, hours) the demo runs when no lake is given.
DEMO_DAYS = (("2026-11-26", "0-23"), ("2026-11-27", "0-5"))
REPORT_SIZE, PAGE_SIZE = (1200, 1500), (1200, 400)


def run_demo(out: Path) -> Path:
    """The demo's lake after the ``DEMO_DAYS``; the demo's own output goes to the terminal."""
    for day, hours in DEMO_DAYS:
        env = {**os.environ, "DEMO_OUT": str(out), "DEMO_DAY": day, "DEMO_HOURS": hours}
        for name in [k for k in env if k.startswith("AIRFLOW")]:
            del env[name]  # the demo makes its own AIRFLOW_HOME
        print(f"Running the demo for {day}, hours {hours} ...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], env=env, check=True)
    return out / "lake"


def shoot(url: str, target: Path, size: tuple[int, int]) -> None:
    """A PNG of ``url`` as Chromium renders it at ``size`` (width, height)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="activity-sync-chromium-") as profile:
        subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                f"--screenshot={target}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, help="a lake with audits (default: run the demo)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args(argv)
    if not CHROMIUM.is_file():
        raise SystemExit(f"no Chromium at {CHROMIUM}; run scripts/install_chromium.sh")
    sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]

    with tempfile.TemporaryDirectory(prefix="activity-sync-screenshots-") as tmp:
        lake_root = args.lake.resolve() if args.lake else run_demo(Path(tmp))
        import activity_audit

        from activity_sync import lake
        from activity_sync.report import render_index

        rows, orgs, total = activity_audit._listing(lake_root, "", "", "", 50)
        if not rows:
            raise SystemExit(f"no audit report under {lake_root}; run `make demo` first")
        page = Path(tmp) / "activity-audit.html"
        page.write_text(render_index(rows, orgs, {"org": "", "from": "", "to": ""}, total))
        shoot(page.as_uri(), args.out / "audit-page.png", PAGE_SIZE)

        complete = [r for r in rows if (r.get("coverage") or {}).get("complete")]
        best = (complete or rows)[0]
        report = lake.audit_folder(lake_root, best["org_id"], best["day"]) / lake.AUDIT_REPORT
        shoot(report.as_uri(), args.out / "audit-report.png", REPORT_SIZE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
