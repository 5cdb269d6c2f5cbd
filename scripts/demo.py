"""`make demo`: one generated day of email activity, synced hour by hour through real Airflow.

Starts the local Salesforce (the emulator, seeded with a realistic demo org), mirrors its
CRM, generates a day of email activity for it, runs the hourly DAG with ``dag.test()`` for
each hour of the day, then the audit DAG, and prints what happened, ending with the
audit's verdict. Airflow's own log lines and warnings go to ``demo_out/logs/`` (one file
per run, ``demo.log`` for the rest), not to the terminal. Everything lives under
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
    """Send everything written to stdout/stderr (Airflow's logs, warnings) to a file.

    Yields a stream on the terminal as it was before, for the demo's own progress lines.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            terminal.close()
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


# The table's columns, with what each counts; the same words as the audit report's.
COLUMNS = [
    ("events", 7, "email events planned in the hour"),
    ("left out", 9, "events left out whole (unreadable, a field missing, a duplicate)"),
    ("tasks", 7, "Tasks planned"),
    ("created", 8, "Tasks the load created in Salesforce"),
    ("updated", 8, "Tasks already there, updated (a re-run)"),
    ("relations+", 11, "TaskRelation rows inserted beyond the primary (none on a re-run)"),
    ("1/person", 9, "Tasks one Task per person would make"),
    # R14: meetings made Salesforce Events, beside the Tasks.
    ("sf.events", 10, "Salesforce Events planned: one per meeting and batch of 50 Contacts"),
    ("ev.created", 11, "Salesforce Events the load created"),
    ("ev.updated", 11, "Salesforce Events already there, updated (a re-run)"),
    ("ev.rel+", 8, "EventRelation rows inserted beyond the primary (none on a re-run)"),
    ("instead", 8, "Tasks one Task per person would make for those meetings"),
    ("left off", 9, "recipients left off a Task (the email still synced for the others)"),
]
EVENT_REASONS = ("malformed", "missing_field", "invalid_field", "unknown_type", "wrong_org")
EVENT_REASONS += ("duplicate_event",)


def _print_table(rows: list[tuple[datetime, dict]], say) -> None:
    say("What the columns count:")
    for name, _, meaning in COLUMNS:
        say(f"  {name:<11} {meaning}")
    say("  mode        shared, or one Task per person (and why), then what was left off, by reason")
    say()
    header = f"{'hour (UTC)':<17}" + "".join(f"{name:>{width}}" for name, width, _ in COLUMNS)
    header += f"  {'mode':<11} left off/out by reason"
    say(header)
    say("-" * len(header))
    totals = dict.fromkeys((name for name, _, _ in COLUMNS), 0)
    reasons: dict[str, int] = {}
    for hour, r in rows:
        p, lo = r["plan"], r["load"]
        by_reason = p.get("rejected_by_reason", {})
        values = {
            "events": p["events"],
            "left out": sum(n for k, n in by_reason.items() if k in EVENT_REASONS),
            "tasks": p["tasks"],
            "created": lo.get("tasks_created", 0),
            "updated": lo.get("tasks_updated", 0),
            "relations+": lo.get("relations_inserted", 0),
            "1/person": p["individual_mode_tasks"],
            "sf.events": p.get("salesforce_events", 0),
            "ev.created": lo.get("salesforce_events_created", 0),
            "ev.updated": lo.get("salesforce_events_updated", 0),
            "ev.rel+": lo.get("event_relations_inserted", 0),
            "instead": p.get("individual_mode_salesforce_events", 0),
            "left off": sum(n for k, n in by_reason.items() if k not in EVENT_REASONS),
        }
        for k, v in values.items():
            totals[k] += v
        for k, v in by_reason.items():
            reasons[k] = reasons.get(k, 0) + v
        say(
            f"{hour:%Y-%m-%d %H:%M}  "
            + "".join(f"{values[name]:>{width}}" for name, width, _ in COLUMNS)
            + f"  {p['mode']:<11} "
            + ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items()))
        )
    say("-" * len(header))
    say(f"{'day total':<17}" + "".join(f"{totals[name]:>{width}}" for name, width, _ in COLUMNS))
    if totals["1/person"]:
        saved = totals["1/person"] - totals["tasks"]
        say(
            f"\nShared Activities made {totals['tasks']:,} Tasks where one per person would have "
            f"made {totals['1/person']:,}: {saved / totals['1/person']:.1%} fewer Tasks."
        )
    if totals["sf.events"]:
        say(
            f"Meetings made {totals['sf.events']:,} shared Salesforce Events where one per person "
            f"would have made {totals['instead']:,} Tasks."
        )
    say("Left off or out, by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))


def main() -> int:
    _configure_airflow()
    os.environ.setdefault("PYTHONPATH", str(ROOT / "include"))
    logs = OUT / "logs"
    with _output_to(logs / "demo.log") as terminal:
        return _run(logs, lambda *parts: print(*parts, file=terminal, flush=True))


def _run(logs: Path, say) -> int:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.pool import Pool
    from airflow.utils import db

    from activity_sync import lake
    from activity_sync.airflow_adapter import (
        SALESFORCE_POOL,
        SALESFORCE_POOL_DESCRIPTION,
        SALESFORCE_POOL_SLOTS,
    )
    from activity_sync.audit import read_audit
    from activity_sync.crm import read_crm
    from activity_sync.mirror import refresh_crm
    from activity_sync.report import verdict
    from activity_sync.salesforce import SalesforceClient
    from demo_data.generate import generate_day, write_landing
    from salesforce_emulator import process

    started = time.monotonic()
    root = OUT / "lake"
    say(f"Airflow's own logs go to {logs}/.")
    say(f"Starting the local Salesforce (demo org) in {OUT / 'emulator'} ...")
    emulator = process.start(OUT / "emulator", seed="demo")
    try:
        connection = emulator.airflow_connection()
        os.environ["AIRFLOW_CONN_SALESFORCE_DEMO"] = json.dumps(connection)
        say(f"  {emulator.info.instance_url}")

        say(f"Preparing Airflow (SQLite metadata DB in {OUT / 'airflow'}) ...")
        db.initdb()
        Pool.create_or_update_pool(
            SALESFORCE_POOL,
            slots=SALESFORCE_POOL_SLOTS,
            description=SALESFORCE_POOL_DESCRIPTION,
            include_deferred=False,
        )

        say(f"Generating a day of email activity for {DAY} ...")
        client = SalesforceClient(emulator.simple_salesforce, poll_wait=0.2)
        crm_dir = lake.crm_folder(root, ORG)
        refresh_crm(client, crm_dir)
        events = generate_day(read_crm(crm_dir), org_id=ORG, day=DAY)
        write_landing(events, root / "landing", ORG)
        say(f"  {len(events):,} events landed under {root / 'landing'}")

        bag = DagBag(dag_folder=str(ROOT / "dags"))
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        hourly = bag.dags["activity_sync_hourly"]
        for t in hourly.tasks:
            t.retries = 0  # dag.test() would sleep through retry delays
        rows = []
        first = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
        say("Running activity_sync_hourly for each hour ...")
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
            say(f"  {hour:%H}:00 done")
        say()
        _print_table(rows, say)

        say("\nRunning activity_sync_audit for the day ...")
        audit = bag.dags["activity_sync_audit"]
        for t in audit.tasks:
            t.retries = 0
        with _output_to(logs / f"audit-{DAY}.log"):
            audit.test(
                run_conf={
                    "day": DAY.isoformat(),
                    "orgs": [],
                    "reconcile": True,
                    "fail_on_alert": False,
                }
            )
        report = lake.audit_folder(root, ORG, DAY.isoformat()) / lake.AUDIT_REPORT
        calls = emulator.stats()["api"]["api_calls"]
        say(f"\nSalesforce API calls today (the emulator's counter): {calls:,}")
        say(f"Results:      {lake.day_folder(root, lake.LOADED, ORG, str(DAY))}/")
        say(f"Plans:        {lake.day_folder(root, lake.PLAN, ORG, str(DAY))}/")
        say(f"Audit report: {report}" + ("" if report.exists() else " (not produced)"))
        document = read_audit(root, ORG, DAY.isoformat())
        if document is not None:
            level, sentence = verdict(document)
            say(f"Audit verdict ({level}): {sentence}")
            for alert in document["alerts"]:
                say(f"  alert [{alert['kind']}] {alert['message']}")
        say(f"Done in {time.monotonic() - started:.0f} s.")
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
