"""dags/activity_sync_audit.py in real Airflow: it parses, is schedulable both ways, and runs.

The runs use ``dag.test()`` (in-process, a migrated SQLite DB) on a hand-written lake,
with reconciliation off, so no Salesforce is needed here; test_reconcile.py covers that.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
from audit_days import DAY, ORG, sample_day

from activity_sync import audit, lake
from activity_sync.airflow_adapter import LOADED_ASSET, SALESFORCE_POOL
from activity_sync.audit.counts import DEFAULT_CHANGE_THRESHOLD_PCT, DEFAULT_LOAD_GRACE

ROOT = Path(__file__).resolve().parents[2]
RECEIVED: list[dict] = []


def collect(alerts: list[dict], context: dict) -> None:
    """The user callback the test points ACTIVITY_SYNC_ALERT_CALLBACK at."""
    RECEIVED.extend({**a, "run_id": context["dag_run"].run_id} for a in alerts)


@pytest.fixture(scope="module")
def dag():
    bag = DagBag(dag_folder=str(ROOT / "dags" / "activity_sync_audit.py"))
    assert bag.import_errors == {}
    return bag.dags["activity_sync_audit"]


def test_the_audit_dag_runs_after_every_load_and_daily_for_backfills(dag) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    schedule = dag.timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert isinstance(schedule.timetable, CronTriggerTimetable)
    assert [a.name for a in schedule.asset_condition.objects] == [LOADED_ASSET]
    # The daily run comes after the last hour of the day before is past the load grace.
    assert schedule.timetable.expression == "30 2 * * *"
    assert timedelta(minutes=0) + DEFAULT_LOAD_GRACE < timedelta(hours=2, minutes=30)
    # Backfill needs a periodic timetable; the scheduler sees the serialized one.
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert serialized.timetable.periodic


def test_the_audit_dag_offers_a_day_and_orgs_for_manual_runs(dag) -> None:
    assert {"day", "orgs", "reconcile", "change_threshold_pct", "fail_on_alert"} <= set(
        dag.params.keys()
    )
    assert dag.params["fail_on_alert"] is False
    assert dag.params["change_threshold_pct"] == DEFAULT_CHANGE_THRESHOLD_PCT == 30.0


def test_only_the_audit_task_calls_salesforce_and_it_is_in_the_api_pool(dag) -> None:
    assert {t.task_id for t in dag.tasks if t.pool == SALESFORCE_POOL} == {"audit"}
    # The closing task runs whatever happened and turns the run red itself: no watcher
    # task that would show "skipped" in every healthy run.
    assert dag.get_task("raise_alerts").trigger_rule == "all_done"
    assert {t.task_id for t in dag.tasks} == {"targets", "audit", "raise_alerts"}


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db) -> Path:
    lake_root = tmp_path / "lake"
    sample_day(lake_root)
    orgs = tmp_path / "orgs.yaml"
    orgs.write_text(
        f"version: 1\norgs:\n  - org_id: {ORG}\n    salesforce_conn_id: salesforce_{ORG}\n"
    )
    monkeypatch.setenv("ACTIVITY_SYNC_LAKE", str(lake_root))
    monkeypatch.setenv("ACTIVITY_SYNC_ORGS", str(orgs))
    monkeypatch.setenv(audit.ALERT_CALLBACK_ENV, f"{__name__}:collect")
    RECEIVED.clear()
    return lake_root


def _states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _tries(run) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}


def test_a_manual_run_for_a_past_day_writes_the_report_and_sends_its_alert_once(
    dag, deployment: Path
) -> None:
    for task in dag.tasks:
        task.retries = 0
    conf = {"day": DAY, "reconcile": False, "fail_on_alert": True}
    first = dag.test(logical_date=datetime(2026, 11, 25, 1, tzinfo=UTC), run_conf=conf)
    out = lake.audit_folder(deployment, ORG, DAY)
    assert {p.name for p in out.iterdir()} >= {"audit.json", "counts.parquet", "report.html"}
    assert [a["kind"] for a in RECEIVED] == ["coverage", "fallback"]
    assert RECEIVED[0]["run_id"] == first.run_id
    states = _states(first)
    assert states["audit"] == "success"
    audit_ti = next(ti for ti in first.get_task_instances() if ti.task_id == "audit")
    assert audit_ti.rendered_map_index == f"{ORG} {DAY}"
    assert states["raise_alerts"] == "failed"  # fail_on_alert: Airflow's failure hooks fire

    second = dag.test(logical_date=datetime(2026, 11, 25, 2, tzinfo=UTC), run_conf=conf)
    assert len(RECEIVED) == 2  # already sent: not again
    assert _states(second)["raise_alerts"] == "success"


def test_a_daily_run_for_a_day_before_anything_was_synced_audits_nothing_and_says_so(
    dag, deployment: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What unpausing the DAG before anything was synced does: no report of zeros."""
    for task in dag.tasks:
        task.retries = 0
    # Every param explicitly: dag.test() in one process keeps an earlier run's conf.
    conf = {"day": None, "orgs": [], "reconcile": False, "fail_on_alert": False}
    run = dag.test(logical_date=datetime(2026, 11, 20, 2, 30, tzinfo=UTC), run_conf=conf)
    assert run.state == "success"
    assert not lake.audit_folder(deployment, ORG, "2026-11-19").exists()
    assert RECEIVED == []
    assert (
        f"not auditing {ORG} 2026-11-19: no hour of {ORG} was planned on or before that day"
        in caplog.text
    )


def test_a_day_the_hourly_runs_missed_entirely_is_audited_and_alerts_every_hour(
    dag, deployment: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The org was synced on DAY (2026-11-20), then the scheduler was down all of the 23rd."""
    for task in dag.tasks:
        task.retries = 0
    conf = {"day": None, "orgs": [], "reconcile": False, "fail_on_alert": False}
    run = dag.test(logical_date=datetime(2026, 11, 24, 2, 30, tzinfo=UTC), run_conf=conf)
    assert run.state == "success"
    assert f"auditing {ORG} 2026-11-23 although no hour of it was planned" in caplog.text
    (alert,) = RECEIVED
    assert alert["kind"] == "coverage"
    assert alert["message"].startswith(
        f"{ORG} 2026-11-23: 0 of 24 hours synced; not synced: 00:00–24:00 UTC."
    )
    document = audit.read_audit(deployment, ORG, "2026-11-23")
    assert document["coverage"]["missing"] == list(range(24))
    assert (
        "00:00–24:00 UTC"
        in (lake.audit_folder(deployment, ORG, "2026-11-23") / lake.AUDIT_REPORT).read_text()
    )


def test_a_healthy_audit_run_has_no_skipped_or_failed_task(dag, deployment: Path) -> None:
    for task in dag.tasks:
        task.retries = 0
    conf = {"day": DAY, "orgs": [], "reconcile": False, "fail_on_alert": False}
    run = dag.test(logical_date=datetime(2026, 11, 25, 3, tzinfo=UTC), run_conf=conf)
    assert run.state == "success"
    assert _states(run) == {"targets": "success", "audit": "success", "raise_alerts": "success"}


def test_an_unknown_org_fails_targets_at_once_and_the_run_names_targets_and_the_cause(
    dag, deployment: Path, capfd: pytest.CaptureFixture
) -> None:
    for task in dag.tasks:
        task.retries = 2  # as shipped: a mistake must not use them
        task.retry_delay = timedelta(0)
    conf = {"day": DAY, "orgs": ["nope"], "reconcile": False, "fail_on_alert": False}
    run = dag.test(logical_date=datetime(2026, 11, 25, 4, tzinfo=UTC), run_conf=conf)
    assert run.state == "failed"
    tries = _tries(run)
    assert tries["targets"] == ("failed", 1)
    assert tries["audit"][0] == "upstream_failed"
    assert tries["raise_alerts"][0] == "failed"
    out = capfd.readouterr()
    log = out.out + out.err
    assert "task targets failed: UnknownOrgError: unknown org_id(s) in params.orgs: ['nope']" in log
    assert "at least one audit failed" not in log


def test_a_failed_audit_turns_the_run_red_naming_the_org_its_day_and_the_error(
    dag, deployment: Path, capfd: pytest.CaptureFixture
) -> None:
    """Reconciling needs the org's Salesforce connection, which this deployment lacks."""
    for task in dag.tasks:
        task.retries = 0
    conf = {"day": DAY, "orgs": [], "reconcile": True, "fail_on_alert": False}
    run = dag.test(logical_date=datetime(2026, 11, 25, 5, tzinfo=UTC), run_conf=conf)
    assert run.state == "failed"
    assert _states(run) == {"targets": "success", "audit": "failed", "raise_alerts": "failed"}
    out = capfd.readouterr()
    assert (
        f"task audit [{ORG} {DAY}] failed: AirflowNotFoundException: "
        f"The conn_id `salesforce_{ORG}` isn't defined"
    ) in out.out + out.err
