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
pytest_plugins: list[str] = ["fixtures_emulator", "fixtures_airflow"]

_RULE_TEST = re.compile(r"^test_(r(?:[1-9]|1[0-4]))_")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every `test_rN_…` with `rN`, so `pytest -m r6` runs one rule's tests."""
    for item in items:
        rule = _RULE_TEST.match(item.name)
        if rule:
            item.add_marker(rule.group(1))
