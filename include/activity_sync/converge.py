"""Re-runs and re-plans against the ledger: what an hour's load adds to it, which events
an hour must not plan again, and what a re-plan deletes (issue 10; ledger.py).

- :func:`hour_rows` — after a load, the hour's ledger rows: every Task the load left in
  Salesforce with its Id, WhoId, WhatId and contact relations.
- :func:`already_synced` — the events of an hour that an earlier load of another hour
  already wrote; a run that does not re-plan leaves them out (``already_synced``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pandas as pd
import pyarrow as pa

from activity_sync import ledger
from activity_sync.load import LoadResult, RelationStatus
from activity_sync.schema import Plan

# Relations a load leaves in Salesforce: the primary (the WhoId), inserted, found there.
HELD = (RelationStatus.PRIMARY, RelationStatus.INSERTED, RelationStatus.EXISTING)


def hour_rows(
    start: datetime,
    event_ids: Iterable[str],
    plan: Plan,
    result: LoadResult,
    kept: pd.DataFrame | None = None,
    now: datetime | None = None,
) -> pa.Table:
    """The hour's ledger rows after its load.

    Args:
        start: the hour.
        event_ids: the events the hour covered (planned, whether or not they made a Task).
        plan: the hour's plan.
        result: the load's result; Tasks it failed to write are not in Salesforce, so not
            in the ledger.
        kept: ledger rows of Tasks no longer planned but kept (edited by someone else).
        now: when the load ended.
    """
    loaded = result.task_results.loc[result.task_results["success"], ["task_key", "Id"]]
    tasks = plan.tasks[["task_key", "event_id", "WhoId", "WhatId"]].merge(loaded, on="task_key")
    tasks = tasks.rename(columns={"Id": "task_id", "WhoId": "who_id", "WhatId": "what_id"})
    tasks["state"] = ledger.TaskState.LOADED.value
    relations = result.relation_results[result.relation_results["status"].isin(HELD)]
    relations = relations[["task_key", "RelationId"]]
    if kept is not None and not kept.empty:
        kept = kept.assign(state=ledger.TaskState.KEPT_EDITED.value)
        tasks = pd.concat([tasks, kept[[*tasks.columns]]], ignore_index=True)
        exploded = kept[["task_key", "relation_ids"]].explode("relation_ids").dropna()
        relations = pd.concat(
            [relations, exploded.rename(columns={"relation_ids": "RelationId"})],
            ignore_index=True,
        )
    return ledger.ledger_rows(start, event_ids, tasks, relations, now)


def already_synced(root, org_id: str, start: datetime, event_ids: pd.Series) -> pd.Series:
    """The events among ``event_ids`` that a load of another hour wrote last (a boolean
    mask aligned with ``event_ids``): delivered again, they are not planned again."""
    owner = ledger.owners(ledger.current(root, org_id, event_ids.dropna()))
    return event_ids.map(owner).notna() & event_ids.map(owner).ne(ledger.hour_label(start))
