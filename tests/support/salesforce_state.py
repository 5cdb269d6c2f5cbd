"""What Salesforce holds, queried back over the API, compared with the plans that were loaded.

Shared by the tests that load through Airflow (``dag.test()`` in test_sync_dag.py, the
scheduler-driven backfill in test_stack.py): after any number of runs, re-runs and
backfills, every planned Task and TaskRelation must be in Salesforce exactly once and
nothing else may be.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import Plan
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD as EXT


def salesforce_tasks(client: SalesforceClient) -> pd.DataFrame:
    return client.query(f"SELECT Id, {EXT}, WhoId, WhatId FROM Task")


def salesforce_relations(client: SalesforceClient) -> pd.DataFrame:
    """The people on each Task (the primary's row included, the WhatId's left out)."""
    return client.query("SELECT TaskId, RelationId FROM TaskRelation WHERE IsWhat = false")


def assert_salesforce_holds_exactly(client: SalesforceClient, plans: Iterable[Plan]) -> None:
    """Salesforce holds the union of ``plans``: each Task once, with its Who, What and people.

    A union, because an event delivered again in a later hour is planned in both hours
    under the same key and must still be one Task.
    """
    plans = list(plans)
    tasks = salesforce_tasks(client)
    assert not tasks[EXT].duplicated().any(), "a Task was loaded twice"
    expected = {
        (r.task_key, r.WhoId, r.WhatId if pd.notna(r.WhatId) else None)
        for plan in plans
        for r in plan.tasks.itertuples()
    }
    held = {
        (r[EXT], r.WhoId, r.WhatId if pd.notna(r.WhatId) else None) for _, r in tasks.iterrows()
    }
    assert held == expected
    relations = salesforce_relations(client).merge(
        tasks[["Id", EXT]], left_on="TaskId", right_on="Id"
    )
    assert not relations.duplicated(["TaskId", "RelationId"]).any()
    planned = {
        pair
        for plan in plans
        for pair in zip(plan.relations["task_key"], plan.relations["RelationId"], strict=True)
    }
    assert set(zip(relations[EXT], relations["RelationId"], strict=True)) == planned
