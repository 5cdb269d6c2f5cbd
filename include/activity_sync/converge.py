"""Re-runs and re-plans against the ledger: what an hour's load adds to it, which events
an hour must not plan again, and what a re-plan deletes (issue 10; ledger.py).

- :func:`hour_rows` — after a load, the hour's ledger rows: every Task the load left in
  Salesforce with its Id, WhoId, WhatId and contact relations.
- :func:`already_synced` — the events of an hour that an earlier load of another hour
  already wrote; a run that does not re-plan leaves them out (``already_synced``).
- :func:`plan_convergence`, :func:`check_cap`, :func:`apply_deletions` — a re-plan: which
  Tasks and relations earlier loads made that the new plan lacks, the delete cap, and the
  Bulk API 2.0 deletes (Recycle Bin).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import pandas as pd
import pyarrow as pa
from simple_salesforce.format import format_soql

from activity_sync import ledger
from activity_sync.activity_kinds import (
    BULK_FALSE,
    BULK_TRUE,
    IS_INVITEE,
    SALESFORCE_EVENTS,
    TASKS,
    ActivityKind,
    RelationStatus,
)
from activity_sync.bulk import RESULT_ERROR, Operation
from activity_sync.errors import ActivitySyncError
from activity_sync.load_results import LoadResult
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import Plan

log = logging.getLogger(__name__)

# Relations a load leaves in Salesforce: the primary (the WhoId), inserted, found there,
# and an Event's invitee row made to relate.
HELD = (
    RelationStatus.PRIMARY,
    RelationStatus.INSERTED,
    RelationStatus.EXISTING,
    RelationStatus.RELATED,
)


def hour_rows(
    start: datetime,
    event_ids: Iterable[str],
    plan: Plan,
    result: LoadResult,
    carried: pd.DataFrame | None = None,
    now: datetime | None = None,
) -> pa.Table:
    """The hour's ledger rows after its load: its Tasks and Salesforce Events (R14).

    Args:
        start: the hour.
        event_ids: the events the hour covered (planned, whether or not they made a Task).
        plan: the hour's plan.
        result: the load's result; Tasks it failed to write are not in Salesforce, so not
            in the ledger.
        carried: ledger rows of Tasks no longer planned that stay in Salesforce
            (:func:`carried_over`), with their ``state``.
        now: when the load ended.
    """
    parts, people = [], []
    for kind, rows, results, relation_results in (
        (TASKS, plan.tasks, result.task_results, result.relation_results),
        (
            SALESFORCE_EVENTS,
            plan.salesforce_events,
            result.event_results,
            result.event_relation_results,
        ),
    ):
        key = kind.key
        loaded = results.loc[results["success"].astype(bool), [key, "Id"]]
        made = rows[[key, "event_id", "WhoId", "WhatId"]].merge(loaded, on=key)
        parts.append(
            pd.DataFrame(
                {
                    "object": kind.object_name,
                    "event_id": made["event_id"],
                    "task_key": made[key],
                    "task_id": made["Id"],
                    "who_id": made["WhoId"],
                    "what_id": made["WhatId"],
                    "state": ledger.TaskState.LOADED.value,
                }
            )
        )
        held = relation_results[relation_results["status"].isin(HELD)]
        people.append(held[[key, "RelationId"]].rename(columns={key: "task_key"}))
    tasks = pd.concat(parts, ignore_index=True)
    relations = pd.concat(people, ignore_index=True)
    if carried is not None and not carried.empty:
        carried = carried.assign(object=carried["object"].fillna(TASKS.object_name))
        tasks = pd.concat([tasks, carried[[*tasks.columns]]], ignore_index=True)
        exploded = carried[["task_key", "relation_ids"]].explode("relation_ids").dropna()
        relations = pd.concat(
            [relations, exploded.rename(columns={"relation_ids": "RelationId"})],
            ignore_index=True,
        )
    return ledger.ledger_rows(start, event_ids, tasks, relations, now)


def already_synced(root: Any, org_id: str, start: datetime, event_ids: pd.Series) -> pd.Series:
    """The events among ``event_ids`` that a load of another hour wrote last (a boolean
    mask aligned with ``event_ids``): delivered again, they are not planned again."""
    # Only text ids can be an event's; any other (hostile input) is rejected by the planner.
    text = event_ids[event_ids.map(type).eq(str)] if event_ids.dtype == object else event_ids
    owner = ledger.owners(root, org_id, text.dropna())
    held_by = text.map(owner)
    synced = held_by.notna() & held_by.ne(ledger.hour_label(start))
    return synced.reindex(event_ids.index, fill_value=False)


class RemovalOutcome(StrEnum):
    """What became of a Task a re-plan dropped (``removals.parquet``'s ``outcome``)."""

    DELETED = "deleted"  # to the Recycle Bin
    DELETE_FAILED = "delete_failed"  # Salesforce refused: kept in the ledger, tried again
    KEPT_EDITED = "kept_edited"  # someone else edited it since the load: kept


class DeleteCapExceeded(ActivitySyncError, RuntimeError):
    """A re-plan would delete more of an hour's Tasks than ``max_delete_share`` allows."""


# A re-plan deletes at most this share of the Tasks earlier loads made for an hour's
# events, unless the run says otherwise (``max_delete_share`` param): a larger share is
# more likely a mistake (a wrong settings file, a CRM half-synced) than a wish.
DEFAULT_MAX_DELETE_SHARE = 0.2
_CHUNK = 300  # Ids per REST query: the URI stays short


@dataclass
class Convergence:
    """What a re-plan must change in Salesforce beside loading the new plan.

    Attributes:
        prior: the ledger's rows for the hour's events before this load (``ledger.current``).
        delete: Tasks to delete (``task_key``, ``task_id``): earlier loads made them for
            these events, the new plan lacks them, they carry our key, and no one else
            edited them since.
        kept: ledger rows of Tasks the new plan lacks that someone else edited: kept.
        gone: Tasks the ledger had that Salesforce no longer holds (deleted, or the key
            changed by hand): nothing to do.
        stale_relations: ``(object, task_key, task_id, RelationId)``: people on Tasks and
            Salesforce Events the new plan keeps, that earlier loads related and the new
            plan does not.
    """

    prior: pd.DataFrame
    delete: pd.DataFrame
    kept: pd.DataFrame
    gone: pd.DataFrame
    stale_relations: pd.DataFrame

    @property
    def prior_tasks(self) -> int:
        return int(self.prior["task_key"].notna().sum())

    def counts(self) -> dict[str, int]:
        return {
            "tasks_before": self.prior_tasks,
            "tasks_to_delete": len(self.delete),
            "tasks_kept_edited": len(self.kept),
            "tasks_already_gone": len(self.gone),
            "relations_to_delete": len(self.stale_relations),
        }


def _query_by_ids(client: SalesforceClient, soql: str, ids: list[str]) -> pd.DataFrame:
    """``soql`` (with one ``{}`` for an Id list) over ``ids`` in chunks, as queryAll."""
    frames = [
        client.query(format_soql(soql, ids[i : i + _CHUNK]), include_deleted=True)
        for i in range(0, len(ids), _CHUNK)
    ]
    found = [f for f in frames if not f.empty]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame()


def planned_keys(plan: Plan) -> set[str]:
    """Every activity key the plan holds: its Tasks' and its Salesforce Events'."""
    return set(plan.tasks["task_key"]) | set(plan.salesforce_events["event_key"])


def _stale_relations(tasks: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """People earlier loads related to the activities the new plan keeps, whom the new
    plan does not relate: ``object``, ``task_key``, ``task_id``, ``RelationId``."""
    frames = []
    for kind, rows, relations in (
        (TASKS, plan.tasks, plan.relations),
        (SALESFORCE_EVENTS, plan.salesforce_events, plan.event_relations),
    ):
        kept_on = tasks[
            tasks["object"].eq(kind.object_name) & tasks["task_key"].isin(rows[kind.key])
        ]
        before = kept_on[["task_key", "task_id", "relation_ids"]].explode("relation_ids").dropna()
        before = before.rename(columns={"relation_ids": "RelationId"})
        now = relations[[kind.key, "RelationId"]].rename(columns={kind.key: "task_key"})
        stale = before.merge(now.assign(_planned=True), on=["task_key", "RelationId"], how="left")
        frames.append(stale[stale["_planned"].isna()].assign(object=kind.object_name))
    stale = pd.concat(frames, ignore_index=True)
    return stale[["object", "task_key", "task_id", "RelationId"]]


def plan_convergence(
    client: SalesforceClient,
    root: Any,
    org_id: str,
    event_ids: Iterable[str],
    plan: Plan,
    external_id_field: str,
) -> Convergence:
    """What Salesforce must lose so that it holds exactly ``plan`` for these events.

    Reads only: the ledger, and Salesforce for the Tasks the plan drops (``queryAll``, so
    archived Tasks are seen too). Careful by construction: a Task is deleted only if the
    ledger records our load of it *and* Salesforce still shows our key on it *and* its
    ``LastModifiedById`` is its ``CreatedById`` — the integration user that created it;
    anyone else's edit keeps it. Salesforce does not say who "the integration user" is to
    an API session without an OAuth identity call; the creator of a Task our upsert
    created is that user, and a Task someone else created is never ours to delete.
    """
    prior = ledger.current(root, org_id, event_ids)
    tasks = prior.dropna(subset=["task_key"])
    tasks = tasks.assign(object=tasks["object"].fillna(TASKS.object_name))
    planned = planned_keys(plan)
    dropped = tasks[~tasks["task_key"].isin(planned)]
    seen = [
        _in_salesforce(client, dropped[dropped["object"].eq(name)], name, external_id_field)
        for name in (TASKS.object_name, SALESFORCE_EVENTS.object_name)
    ]
    seen = pd.concat([f for f in seen if not f.empty] or [dropped.iloc[:0]], ignore_index=True)
    if seen.empty:
        delete = kept = gone = dropped.iloc[:0]
    else:
        deleted = seen["IsDeleted"].astype(str).str.lower().eq("true")
        ours = seen[external_id_field].eq(seen["task_key"]) & ~deleted
        edited = seen["LastModifiedById"].ne(seen["CreatedById"])
        columns = list(dropped.columns)
        delete = seen.loc[ours & ~edited, columns]
        kept = seen.loc[ours & edited, columns]
        gone = seen.loc[~ours, columns]
    stale = _stale_relations(tasks, plan)
    return Convergence(prior, delete, kept, gone, stale)


def _in_salesforce(
    client: SalesforceClient, rows: pd.DataFrame, object_name: str, external_id_field: str
) -> pd.DataFrame:
    """``rows`` (ledger rows of one object) with what Salesforce holds for their Ids:
    key, IsDeleted, CreatedById, LastModifiedById (queryAll: archived ones too)."""
    if rows.empty:
        return rows.iloc[:0]
    fields = ["Id", external_id_field, "IsDeleted", "CreatedById", "LastModifiedById"]
    held = _query_by_ids(
        client,
        f"SELECT {', '.join(fields)} FROM {object_name} WHERE Id IN {{}}",
        rows["task_id"].tolist(),
    ).reindex(columns=fields)
    return rows.merge(held, left_on="task_id", right_on="Id", how="left")


def check_cap(conv: Convergence, max_share: float, org_id: str, start: datetime) -> None:
    """Refuse, before anything changes, a re-plan deleting more than ``max_share``.

    Raises:
        DeleteCapExceeded: the message says how many and how to confirm.
    """
    if not conv.prior_tasks or len(conv.delete) <= max_share * conv.prior_tasks:
        return
    share = len(conv.delete) / conv.prior_tasks
    raise DeleteCapExceeded(
        f"re-plan of {org_id} {start:%Y-%m-%d %H}:00 UTC would delete {len(conv.delete)} of "
        f"the {conv.prior_tasks} Tasks earlier loads made for its events ({share:.0%}), over "
        f"max_delete_share {max_share:.0%}; nothing was changed. Check the plan "
        "(a dry run with replan shows what would be deleted); to confirm, run the hour again "
        f'with conf {{"replan": true, "max_delete_share": {min(1.0, round(share + 0.005, 2))}}}'
    )


def apply_deletions(client: SalesforceClient, conv: Convergence) -> dict[str, Any]:
    """Delete the Tasks and the stale relations (Bulk API 2.0 ``delete``: to the Recycle
    Bin, restorable for 15 days). Called after the new plan is loaded, so the relations
    still there are read afresh: an upsert that changed a WhoId has already moved its
    primary.

    Returns:
        Counts, and the ``task_key`` of Tasks whose delete Salesforce refused (kept in the
        ledger, so the next re-plan tries again).
    """
    failed_keys: list[str] = []
    deleted = {TASKS.object_name: 0, SALESFORCE_EVENTS.object_name: 0}
    for name in (TASKS.object_name, SALESFORCE_EVENTS.object_name):
        doomed = conv.delete[conv.delete["object"].eq(name)]
        if doomed.empty:
            continue
        result = client.ingest(
            name, Operation.DELETE, doomed[["task_id"]].rename(columns={"task_id": "Id"})
        )
        deleted[name] = len(result.successful)
        refused = set(result.failed.get("Id", pd.Series(dtype=object))) | set(
            result.unprocessed.get("Id", pd.Series(dtype=object))
        )
        failed_keys += doomed.loc[doomed["task_id"].isin(refused), "task_key"].tolist()
        for _, row in result.failed.iterrows():
            log.warning("%s %s not deleted: %s", name, row.get("Id"), row.get(RESULT_ERROR))
    relations_deleted = relations_unrelated = 0
    for kind in (TASKS, SALESFORCE_EVENTS):
        stale = conv.stale_relations[conv.stale_relations["object"].eq(kind.object_name)]
        deleted_now, unrelated_now = _remove_relations(client, kind, stale)
        relations_deleted += deleted_now
        relations_unrelated += unrelated_now
    log.info(
        "re-plan: %s deleted (%d refused), %d relations deleted, %d invitees no longer "
        "related, %d edited activities kept",
        deleted,
        len(failed_keys),
        relations_deleted,
        relations_unrelated,
        len(conv.kept),
    )
    return {
        "tasks_deleted": deleted[TASKS.object_name],
        "salesforce_events_deleted": deleted[SALESFORCE_EVENTS.object_name],
        "tasks_delete_failed": len(failed_keys),
        "relations_deleted": relations_deleted,
        "event_invitees_unrelated": relations_unrelated,
        "tasks_kept_edited": len(conv.kept),
        "failed_keys": failed_keys,
    }


def _remove_relations(
    client: SalesforceClient, kind: ActivityKind, stale: pd.DataFrame
) -> tuple[int, int]:
    """Remove the stale relations of one kind of activity; returns (deleted, unrelated).

    The rows are read afresh (after the new plan's load) and only those still relating
    are touched. A Salesforce Event's row that also invites its person (someone invited
    them in Salesforce: ``IsInvitee``) keeps the invitation and only stops relating
    (``IsParent`` false); the other rows are deleted (Bulk API 2.0 ``delete``).
    """
    if stale.empty:
        return 0, 0
    flags = f", {IS_INVITEE}" if kind.parent_flag else ""
    relating = f" AND {kind.parent_flag} = true" if kind.parent_flag else ""
    live = _query_by_ids(
        client,
        f"SELECT Id, {kind.parent_field}, RelationId{flags} FROM {kind.relation_object} "
        f"WHERE IsWhat = false{relating} AND IsDeleted = false AND {kind.parent_field} IN {{}}",
        stale["task_id"].drop_duplicates().tolist(),
    )
    if live.empty:
        return 0, 0
    doomed = live.merge(
        stale, left_on=[kind.parent_field, "RelationId"], right_on=["task_id", "RelationId"]
    )
    invited = (
        doomed[IS_INVITEE].astype(str).str.lower().eq(BULK_TRUE)
        if kind.parent_flag
        else pd.Series(False, index=doomed.index)
    )
    unrelated = deleted = 0
    if invited.any():
        rows = doomed.loc[invited, ["Id"]].assign(**{kind.parent_flag: BULK_FALSE})
        unrelated = len(client.ingest(kind.relation_object, Operation.UPDATE, rows).successful)
    if (~invited).any():
        rows = doomed.loc[~invited, ["Id"]]
        deleted = len(client.ingest(kind.relation_object, Operation.DELETE, rows).successful)
    return deleted, unrelated


def carried_over(prior: pd.DataFrame, plan: Plan, keys: Iterable[str] = ()) -> pd.DataFrame:
    """Ledger rows to keep beside the new load's: Tasks of these events no longer planned
    that stay in Salesforce (a plain re-run does not delete; a refused delete; an edited
    Task), so that the ledger keeps knowing them and a later re-plan can clean them up.

    Args:
        prior: the ledger's rows for the hour's events before the load.
        plan: the new plan.
        keys: when given, only these task_keys are carried (a re-plan carries the kept
            and the refused ones, not those it deleted).
    """
    tasks = prior.dropna(subset=["task_key"])
    rows = tasks[~tasks["task_key"].isin(planned_keys(plan))]
    keys = list(keys)
    return rows[rows["task_key"].isin(keys)] if keys else rows
