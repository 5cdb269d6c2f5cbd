"""Session setup shared by all tests.

Airflow reads its configuration when first imported, so the throwaway AIRFLOW_HOME and
the project's folders are set here, before any test module imports it.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="activity-sync-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ.setdefault("PYTHONPATH", str(ROOT / "include"))

# Fixture modules, one per concern, kept out of this file so their owners don't collide.
pytest_plugins: list[str] = ["fixtures_emulator", "fixtures_airflow", "fixtures_planners"]

_RULE_TEST = re.compile(r"^test_(r(?:[1-9]|1[0-4]))_")


# The modules that take minutes each (whole stacks, the demo, the planner oracle), then
# those of a minute or more (DAG runs, network faults, racing loads, the browser), longest
# first. `make test` runs them before everything else: with `--dist loadfile` and no reorder,
# pytest-xdist hands modules out in this order, so the long ones start at once on separate
# workers and the many short ones fill the gaps, instead of one worker ending alone on a stack.
LONG_MODULES = (
    "test_stack_celery.py",
    "test_stack.py",
    "test_demo.py",
    "test_reference.py",
    "test_network_faults.py",
    "test_sync_dag.py",
    "test_load_races.py",
    "test_plugin.py",
    "test_replan_dag.py",
    "test_audit_dag.py",
    "test_load_salesforce.py",
    "test_hostile_input.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every `test_rN_…` with `rN`, so `pytest -m r6` runs one rule's tests; put the
    long modules first (a stable sort: the rest keeps its order)."""
    for item in items:
        rule = _RULE_TEST.match(item.name)
        if rule:
            item.add_marker(rule.group(1))
    rank = {name: n for n, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_MODULES)))
