"""What Salesforce holds, queried back over the API, compared with the plans that were loaded.

Shared by the tests that load through Airflow (``dag.test()`` in test_sync_dag.py, the
scheduler-driven backfill in test_stack.py): after any number of runs, re-runs and
backfills, every planned Task and TaskRelation, Salesforce Event and relating EventRelation
must be in Salesforce exactly once and nothing else may be.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import Plan
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD as EXT


def _held(client: SalesforceClient, soql: str, archived: bool) -> pd.DataFrame:
    """``soql``'s rows; with ``archived``, by queryAll, deleted rows left out (archived
    activities are only returned by queryAll)."""
    if not archived:
        return client.query(soql)
    where = " AND " if " WHERE " in soql else " WHERE "
    return client.query(soql + where + "IsDeleted = false", include_deleted=True)


def salesforce_tasks(client: SalesforceClient, archived: bool = False) -> pd.DataFrame:
    return _held(client, f"SELECT Id, {EXT}, WhoId, WhatId FROM Task", archived)


def salesforce_relations(client: SalesforceClient, archived: bool = False) -> pd.DataFrame:
    """The people on each Task (the primary's row included, the WhatId's left out)."""
    return _held(
        client, "SELECT TaskId, RelationId FROM TaskRelation WHERE IsWhat = false", archived
    )


def salesforce_events(client: SalesforceClient, archived: bool = False) -> pd.DataFrame:
    return _held(client, f"SELECT Id, {EXT}, WhoId, WhatId FROM Event", archived)


def salesforce_event_relations(client: SalesforceClient, archived: bool = False) -> pd.DataFrame:
    """The people related to each Event (IsParent rows; invitees and the WhatId left out)."""
    return _held(
        client,
        "SELECT EventId, RelationId FROM EventRelation WHERE IsWhat = false AND IsParent = true",
        archived,
    )


def assert_salesforce_holds_exactly(
    client: SalesforceClient, plans: Iterable[Plan], archived: bool = False
) -> None:
    """Salesforce holds the union of ``plans``: each Task and Salesforce Event once, with
    its Who, What and people; with ``archived``, archived activities count too (queryAll).

    A union, because an event delivered again in a later hour is planned in both hours
    under the same key and must still be one Task.
    """
    plans = list(plans)
    _assert_exactly(
        salesforce_tasks(client, archived),
        salesforce_relations(client, archived),
        [(plan.tasks, plan.relations) for plan in plans],
        "task_key",
        "TaskId",
    )
    _assert_exactly(
        salesforce_events(client, archived),
        salesforce_event_relations(client, archived),
        [(plan.salesforce_events, plan.event_relations) for plan in plans],
        "event_key",
        "EventId",
    )


def _assert_exactly(
    held_rows: pd.DataFrame,
    held_relations: pd.DataFrame,
    planned: list[tuple[pd.DataFrame, pd.DataFrame]],
    key: str,
    parent: str,
) -> None:
    # A query that returns no rows returns no columns either.
    held_rows = held_rows.reindex(columns=["Id", EXT, "WhoId", "WhatId"])
    held_relations = held_relations.reindex(columns=[parent, "RelationId"])
    assert not held_rows[EXT].duplicated().any(), f"a {key} was loaded twice"
    expected = {
        (getattr(r, key), r.WhoId, r.WhatId if pd.notna(r.WhatId) else None)
        for rows, _ in planned
        for r in rows.itertuples()
    }
    held = {
        (r[EXT], r.WhoId, r.WhatId if pd.notna(r.WhatId) else None) for _, r in held_rows.iterrows()
    }
    assert held == expected
    relations = held_relations.merge(held_rows[["Id", EXT]], left_on=parent, right_on="Id")
    assert not relations.duplicated([parent, "RelationId"]).any()
    wanted = {
        pair
        for _, people in planned
        for pair in zip(people[key], people["RelationId"], strict=True)
    }
    assert set(zip(relations[EXT], relations["RelationId"], strict=True)) == wanted
