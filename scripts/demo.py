"""`make demo`: one generated day of email activity, synced hour by hour through real Airflow.

Starts the local Salesforce (the emulator, seeded with a realistic demo org), mirrors its
CRM, generates a day of email activity for it, runs the hourly DAG with ``dag.test()`` for
each hour of the day, then the audit DAG, and prints what happened. Everything lives under
``demo_out/``; the emulator keeps its state there, so re-running the demo upserts the same
Tasks again and must not duplicate anything (the totals say so).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("DEMO_OUT", ROOT / "demo_out")).resolve()
DAY = date.fromisoformat(os.environ.get("DEMO_DAY", "2026-11-26"))
# Hours of the day to run, "first-last" in UTC (the tests run a few, the demo all 24).
FIRST_HOUR, LAST_HOUR = (int(h) for h in os.environ.get("DEMO_HOURS", "0-23").split("-"))
ORG = "demo"


def _configure_airflow() -> None:
    """A project-local AIRFLOW_HOME with SQLite, set before Airflow is first imported."""
    home = OUT / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "ACTIVITY_SYNC_LAKE": str(OUT / "lake"),
            "ACTIVITY_SYNC_ORGS": str(ROOT / "include" / "config" / "orgs.yaml"),
            # The local Salesforce finishes Bulk jobs at once; poll it briskly.
            "ACTIVITY_SYNC_BULK_POLL_SECONDS": "0.2",
        }
    )


@contextlib.contextmanager
def _output_to(path: Path):
    """Send everything written to stdout/stderr (Airflow's task logs) to a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _hour_report(root: Path, hour: datetime) -> dict:
    from activity_sync import lake

    plan_file = lake.partition(root, lake.PLAN, ORG, hour) / lake.PLAN_SUMMARY
    load_file = lake.partition(root, lake.LOADED, ORG, hour) / lake.LOAD_SUMMARY
    plan = json.loads(plan_file.read_text())
    loaded = json.loads(load_file.read_text()) if load_file.exists() else {}
    return {"plan": plan, "load": loaded}


def _print_table(rows: list[tuple[datetime, dict]]) -> None:
    header = (
        f"{'hour (UTC)':<17}{'events':>7}{'tasks':>7}{'created':>8}{'updated':>8}"
        f"{'relations+':>11}{'indiv.mode':>11}{'rejected':>9}  {'mode':<11} rejected by reason"
    )
    print(header)
    print("-" * len(header))
    totals: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for hour, r in rows:
        p, lo = r["plan"], r["load"]
        values = {
            "events": p["events"],
            "tasks": p["tasks"],
            "created": lo.get("tasks_created", 0),
            "updated": lo.get("tasks_updated", 0),
            "relations": lo.get("relations_inserted", 0),
            "individual": p["individual_mode_tasks"],
            "rejected": sum(p.get("rejected_by_reason", {}).values()),
        }
        for k, v in values.items():
            totals[k] = totals.get(k, 0) + v
        for k, v in p.get("rejected_by_reason", {}).items():
            reasons[k] = reasons.get(k, 0) + v
        print(
            f"{hour:%Y-%m-%d %H:%M}  {values['events']:>7}{values['tasks']:>7}"
            f"{values['created']:>8}{values['updated']:>8}{values['relations']:>11}"
            f"{values['individual']:>11}{values['rejected']:>9}  {p['mode']:<11} "
            + ", ".join(f"{k} {v}" for k, v in sorted(p.get("rejected_by_reason", {}).items()))
        )
    print("-" * len(header))
    print(
        f"{'day total':<17}{totals['events']:>7}{totals['tasks']:>7}{totals['created']:>8}"
        f"{totals['updated']:>8}{totals['relations']:>11}{totals['individual']:>11}"
        f"{totals['rejected']:>9}"
    )
    saved = totals["individual"] - totals["tasks"]
    if totals["individual"]:
        print(
            f"\nShared Activities made {totals['tasks']:,} Tasks where individual mode would have "
            f"made {totals['individual']:,}: {saved:,} fewer ({-saved / totals['individual']:.1%})."
        )
    print("Rejected by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))


def main() -> int:
    _configure_airflow()
    os.environ.setdefault("PYTHONPATH", str(ROOT / "include"))

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.pool import Pool
    from airflow.utils import db

    from activity_sync import lake
    from activity_sync.airflow_adapter import (
        SALESFORCE_POOL,
        SALESFORCE_POOL_DESCRIPTION,
        SALESFORCE_POOL_SLOTS,
    )
    from activity_sync.crm import read_crm
    from activity_sync.mirror import refresh_crm
    from activity_sync.salesforce import SalesforceClient
    from demo_data.generate import generate_day, write_landing
    from salesforce_emulator import process

    started = time.monotonic()
    root = OUT / "lake"
    print(f"Starting the local Salesforce (demo org) in {OUT / 'emulator'} ...")
    emulator = process.start(OUT / "emulator", seed="demo")
    try:
        connection = emulator.airflow_connection()
        os.environ["AIRFLOW_CONN_SALESFORCE_DEMO"] = json.dumps(connection)
        print(f"  {emulator.info.instance_url}")

        print(f"Preparing Airflow (SQLite metadata DB in {OUT / 'airflow'}) ...")
        db.initdb()
        Pool.create_or_update_pool(
            SALESFORCE_POOL,
            slots=SALESFORCE_POOL_SLOTS,
            description=SALESFORCE_POOL_DESCRIPTION,
            include_deferred=False,
        )

        print(f"Generating a day of email activity for {DAY} ...")
        client = SalesforceClient(emulator.simple_salesforce, poll_wait=0.2)
        crm_dir = lake.crm_folder(root, ORG)
        refresh_crm(client, crm_dir)
        events = generate_day(read_crm(crm_dir), org_id=ORG, day=DAY)
        write_landing(events, root / "landing", ORG)
        print(f"  {len(events):,} events landed under {root / 'landing'}")

        bag = DagBag(dag_folder=str(ROOT / "dags"))
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        hourly = bag.dags["activity_sync_hourly"]
        for t in hourly.tasks:
            t.retries = 0  # dag.test() would sleep through retry delays
        rows = []
        logs = OUT / "logs"
        first = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
        print(f"Running activity_sync_hourly for each hour (Airflow logs in {logs}) ...")
        for n in range(FIRST_HOUR, LAST_HOUR + 1):
            hour = first + timedelta(hours=n)
            # A manual run's data interval is the last complete hour before its logical date.
            with _output_to(logs / f"hourly-{hour:%Y%m%dT%H}.log"):
                run = hourly.test(
                    logical_date=hour + timedelta(hours=1), run_conf={"dry_run": False}
                )
            if run.state != "success":
                raise SystemExit(
                    f"run for {hour:%H}:00 ended {run.state}; see {logs}/hourly-{hour:%Y%m%dT%H}.log"
                )
            rows.append((hour, _hour_report(root, hour)))
            print(f"  {hour:%H}:00 done", flush=True)
        print()
        _print_table(rows)

        print("Running activity_sync_audit for the day ...")
        audit = bag.dags["activity_sync_audit"]
        for t in audit.tasks:
            t.retries = 0
        with _output_to(logs / f"audit-{DAY}.log"):
            audit.test(run_conf={"day": DAY.isoformat(), "orgs": [], "reconcile": True})
        report = lake.audit_folder(root, ORG, DAY.isoformat()) / lake.AUDIT_REPORT
        calls = emulator.stats()["api"]["api_calls"]
        print(f"\nSalesforce API calls today (the emulator's counter): {calls:,}")
        print(f"Results:      {lake.day_folder(root, lake.LOADED, ORG, str(DAY))}/")
        print(f"Plans:        {lake.day_folder(root, lake.PLAN, ORG, str(DAY))}/")
        print(f"Audit report: {report}" + ("" if report.exists() else " (not produced)"))
        print(f"Done in {time.monotonic() - started:.0f} s.")
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
