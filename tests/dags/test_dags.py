"""Every DAG file imports cleanly in a DagBag, and the hourly DAG keeps its promises."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import CronDataIntervalTimetable

from activity_sync.airflow_adapter import LOADED_ALIAS, SALESFORCE_POOL

ROOT = Path(__file__).resolve().parents[2]
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


def test_hourly_dag_syncs_orgs_in_one_mapped_task_per_shard_labelled_with_its_orgs(dagbag):
    dag = dagbag.dags["activity_sync_hourly"]
    assert {t.task_id for t in dag.tasks} == {
        "window",
        "select_orgs",
        "sync",
        "publish",
        "summary",
    }
    sync = dag.get_task("sync")
    assert sync.is_mapped
    assert sync.map_index_template == "{{ shard_label }}"
    assert sync.upstream_task_ids == {"window", "select_orgs"}


def test_hourly_dag_leaves_salesforce_concurrency_to_each_orgs_slots_not_a_shared_pool(dagbag):
    # One pool for every org let one slow org hold the slots all others waited for
    # (issue 11); each org's Salesforce steps now hold the org's own slots (org_slots).
    dag = dagbag.dags["activity_sync_hourly"]
    assert {t.pool for t in dag.tasks} == {"default_pool"}
    assert SALESFORCE_POOL != "default_pool"


def test_hourly_dag_publishes_its_asset_from_one_unmapped_task(dagbag):
    dag = dagbag.dags["activity_sync_hourly"]
    producers = [t for t in dag.tasks if t.outlets]
    assert [t.task_id for t in producers] == ["publish"]
    # Through an alias: the task adds the LOADED_ASSET event only when an org loaded.
    assert [a.name for a in producers[0].outlets] == [LOADED_ALIAS]
    assert not producers[0].get_closest_mapped_task_group()


def test_hourly_dag_retries_with_backoff_and_a_final_summary_always_runs(dagbag):
    dag = dagbag.dags["activity_sync_hourly"]
    sync = dag.get_task("sync")
    assert sync.retries >= 1 and sync.retry_exponential_backoff
    # No watcher that is skipped in every healthy run: the summary runs whatever happened
    # before it, and fails when an org failed (tests/dags/test_sync_dag.py runs both cases).
    summary = dag.get_task("summary")
    assert summary.trigger_rule == "all_done" and summary.retries == 0
    assert dag.get_task("publish").trigger_rule == "all_done"
    assert summary.upstream_task_ids == {"publish"}
    assert dag.get_task("publish").upstream_task_ids == {"sync"}
    assert {t.task_id for t in dag.tasks if not t.downstream_task_ids} == {"summary"}


def test_hourly_dag_offers_params_for_manual_runs(dagbag):
    params = dagbag.dags["activity_sync_hourly"].params
    # The window is the run's data interval (tests/dags/test_task_failures.py).
    assert {"orgs", "dry_run"} <= set(params.keys())
