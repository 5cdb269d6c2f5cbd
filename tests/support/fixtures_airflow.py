"""Fixtures for tests that run DAGs through real Airflow (``dag.test()``).

``airflow_db``
    Session-scoped: migrates the throwaway SQLite metadata DB that tests/conftest.py
    points Airflow at. ``dag.test()`` needs it; DagBag parsing does not.

``hourly_dag``
    The parsed ``activity_sync_hourly`` DAG with retries off: ``dag.test()`` would sleep
    through real retry delays. Transient Salesforce failures are still retried, inside
    the tasks, by ``SalesforceClient``.

``audit_dag``
    The same for ``activity_sync_audit``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow_db() -> None:
    from airflow.utils import db

    db.initdb()


def _parsed_without_retries(file: str, dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / file))
    dag = bag.dags[dag_id]
    for task in dag.tasks:
        task.retries = 0
    return dag


@pytest.fixture(scope="session")
def hourly_dag(airflow_db):
    return _parsed_without_retries("activity_sync_hourly.py", "activity_sync_hourly")


@pytest.fixture(scope="session")
def audit_dag(airflow_db):
    return _parsed_without_retries("activity_sync_audit.py", "activity_sync_audit")
