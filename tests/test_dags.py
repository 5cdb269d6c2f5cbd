"""Every DAG file imports cleanly in a DagBag, and the hourly DAG keeps its promises."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import CronDataIntervalTimetable

from activity_sync.airflow_adapter import LOADED_ASSET, SALESFORCE_POOL

ROOT = Path(__file__).resolve().parents[1]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_errors(path: Path):
    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    assert bag.dags, f"{path.name} defines no DAG"


def test_every_dag_has_docs_tags_and_an_owner(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md, dag_id
        assert "activity-sync" in dag.tags, dag_id
        assert all(t.owner != "airflow" for t in dag.tasks), dag_id


def test_hourly_dag_owns_an_hour_long_data_interval(dagbag):
    dag = dagbag.dags["activity_sync_hourly"]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is False


def test_hourly_dag_calls_salesforce_only_from_tasks_in_the_api_pool(dagbag):
    dag = dagbag.dags["activity_sync_hourly"]
    pooled = {t.task_id for t in dag.tasks if t.pool == SALESFORCE_POOL}
    assert pooled == {"org.refresh_crm", "org.detect", "org.wait_for_budget", "org.load"}


def test_hourly_dag_publishes_its_asset_from_one_unmapped_task(dagbag):
    dag = dagbag.dags["activity_sync_hourly"]
    producers = [t for t in dag.tasks if t.outlets]
    assert [t.task_id for t in producers] == ["publish"]
    assert [a.name for a in producers[0].outlets] == [LOADED_ASSET]
    assert not producers[0].get_closest_mapped_task_group()


def test_hourly_dag_retries_with_backoff_and_a_run_fails_when_any_org_fails(dagbag):
    dag = dagbag.dags["activity_sync_hourly"]
    load = dag.get_task("org.load")
    assert load.retries >= 1 and load.retry_exponential_backoff
    watcher = dag.get_task("fail_if_any_org_failed")
    assert watcher.trigger_rule == "one_failed"
    assert {"org.load", "publish"} <= watcher.upstream_task_ids


def test_hourly_dag_offers_params_for_manual_runs(dagbag):
    params = dagbag.dags["activity_sync_hourly"].params
    # The window is the run's data interval (tests/test_task_failures.py).
    assert {"orgs", "dry_run"} <= set(params.keys())


def test_hourly_dag_waits_for_api_budget_in_reschedule_mode_instead_of_failing(dagbag):
    sensor = dagbag.dags["activity_sync_hourly"].get_task("org.wait_for_budget")
    assert sensor.mode == "reschedule"  # frees the worker slot while it waits
    assert sensor.poke_interval >= 60
    assert sensor.timeout >= 12 * 3600
    assert sensor.downstream_task_ids == {"org.load"}
