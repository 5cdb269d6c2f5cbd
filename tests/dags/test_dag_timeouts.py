"""Every task of both DAGs has an execution_timeout that fits its work (issue 12, item 7).

Without one, a task stuck on Salesforce holds its worker, its orgs' Salesforce slots and
(the audit) its ``salesforce_api`` pool slot forever. Each value must leave room for the work it bounds: a Salesforce call that
fails until the client gives up, every request waiting out its timeouts; a Bulk job
polled for the client's whole job timeout.
"""

from __future__ import annotations

import inspect
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from activity_sync.airflow_adapter import EXECUTION_TIMEOUTS, SALESFORCE_POOL
from activity_sync.org_slots import DEFAULT_WAIT_SECONDS
from activity_sync.salesforce import SalesforceClient
from activity_sync.transport import HttpTimeouts

ROOT = Path(__file__).resolve().parents[2]
CLIENT = {
    name: p.default
    for name, p in inspect.signature(SalesforceClient.__init__).parameters.items()
    if p.default is not inspect.Parameter.empty
}


def _one_call_given_up() -> timedelta:
    """A call that times out at every attempt: each waits connect + read, then backs off."""
    timeouts = HttpTimeouts()
    attempts = CLIENT["max_attempts"]
    waiting = attempts * (timeouts.connect + timeouts.read)
    backoff = sum(
        min(CLIENT["backoff_max"], CLIENT["backoff"] * 2 ** (attempt - 1))
        for attempt in range(1, attempts)
    )
    return timedelta(seconds=waiting + backoff)


@pytest.fixture(scope="module")
def tasks() -> dict[str, object]:
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return {f"{dag_id}.{t.task_id}": t for dag_id, dag in bag.dags.items() for t in dag.tasks}


def _name(task_id: str) -> str:
    return task_id.rsplit(".", 1)[-1]


def test_every_task_of_both_dags_has_its_execution_timeout(tasks):
    missing = [t for t, task in tasks.items() if task.execution_timeout is None]
    assert not missing, f"no execution_timeout: {missing}"
    for task_id, task in tasks.items():
        assert task.execution_timeout == EXECUTION_TIMEOUTS[_name(task_id)], task_id


def test_every_execution_timeout_names_a_task_that_exists(tasks):
    assert set(EXECUTION_TIMEOUTS) == {_name(t) for t in tasks}


def test_no_task_holds_a_salesforce_pool_slot_for_more_than_three_hours(tasks):
    pooled = {t: task for t, task in tasks.items() if task.pool == SALESFORCE_POOL}
    assert {_name(t) for t in pooled} == {"audit"}  # the hourly DAG uses per-org slots
    assert all(task.execution_timeout <= timedelta(hours=3) for task in pooled.values())


def test_a_call_given_up_after_every_retry_is_bounded():
    assert _one_call_given_up() < timedelta(minutes=15)


def test_a_sync_task_outlasts_one_orgs_worst_hour():
    """A slot waited for to the end, a CRM refresh and a load each polling a Bulk job for
    the whole job timeout, and the other calls (login, describe, limits, results) failing
    to the end: whatever else its shard did, an attempt can finish one such org."""
    job = timedelta(seconds=CLIENT["job_timeout"])
    worst = timedelta(seconds=DEFAULT_WAIT_SECONDS) + 2 * job + 8 * _one_call_given_up()
    assert EXECUTION_TIMEOUTS["sync"] >= worst


def test_the_audit_outlasts_a_bulk_job_polled_for_the_whole_job_timeout():
    job = timedelta(seconds=CLIENT["job_timeout"])
    assert EXECUTION_TIMEOUTS["audit"] >= job + 2 * _one_call_given_up()
