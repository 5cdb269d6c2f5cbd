"""Load a plan into Salesforce exactly once (R11, R14).

Tasks are upserted on the external key, so a re-run or a resumed run updates instead of
duplicating. TaskRelation rows cannot be upserted, so before inserting the loader reads
which already exist — but only for Tasks the upsert reports as not newly created, since a
Task created by this very job cannot carry relations yet. A relation reported as a
duplicate is counted as already there: that is what a retried insert job produces.

Salesforce Events (R14) go the same way, one step behind the Tasks: upserted on the same
external-ID field (Task and Event share Activity's custom fields), then only their missing
EventRelation rows inserted, with ``IsParent`` true so that they relate the person rather
than invite them. Each step is one function taking an :class:`ActivityKind` that says
which objects and fields it works on.

The jobs themselves (parts by size, row retries, the record of job ids that lets a
retried task wait for its earlier jobs) are :mod:`activity_sync.load_jobs`'.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from simple_salesforce.format import format_soql

from activity_sync import load_results
from activity_sync.activity_kinds import (
    BULK_FALSE,
    BULK_TRUE,
    SALESFORCE_EVENTS,
    TASKS,
    ActivityKind,
    RelationStatus,
    relation_result_columns,
    result_columns,
)
from activity_sync.bulk import (
    DUPLICATE_VALUE,
    INVALID_FIELD_FOR_INSERT_UPDATE,
    MAX_UPLOAD_BYTES,
    Operation,
)
from activity_sync.job_ledger import JobLedger
from activity_sync.load_jobs import JobRunner, JobSpec, bulk_cells
from activity_sync.load_results import LoadResult
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import Plan
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadOptions:
    """How :func:`load_plan` talks to one org.

    Attributes:
        external_id_field: the Activity field holding ``task_key`` and ``event_key``,
            upserted on (R11).
        row_attempts: jobs a row gets when Salesforce could not lock it, another job
            wrote its key first, or it was not processed; after the last, the row goes
            to the dead letter.
        row_retry_wait: seconds before the second job, doubling for each later one.
        max_upload_bytes: the most CSV one Bulk job is sent; bigger loads are split.
        relation_query_chunk, relation_rest_max, relation_bulk_chunk: how the relations
            of re-touched Tasks are read (see ``_existing_relations``).
    """

    external_id_field: str = DEFAULT_EXTERNAL_ID_FIELD
    row_attempts: int = 4
    row_retry_wait: float = 2.0
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    relation_query_chunk: int = 300  # Task Ids per REST TaskRelation query: the URI stays short
    relation_rest_max: int = 2_000  # above this many Tasks to check, read through Bulk queries
    relation_bulk_chunk: int = 4_000  # Task Ids per Bulk query: its SOQL stays under 100,000 chars


def task_rows(
    tasks: pd.DataFrame, external_id_field: str, kind: ActivityKind = TASKS
) -> pd.DataFrame:
    """The plan's Tasks (or Salesforce Events) as the Bulk upsert sends them: keyed, nulls
    made clearable, checkboxes spelled true/false."""
    return bulk_cells(_task_fields(tasks, external_id_field, kind), kind.clearable)


def _task_fields(
    tasks: pd.DataFrame, external_id_field: str, kind: ActivityKind = TASKS
) -> pd.DataFrame:
    rows = tasks[[kind.key, *kind.fields]].rename(columns={kind.key: external_id_field})
    rows = rows.astype(object).where(rows.notna(), None)
    for column in kind.fields:
        if pd.api.types.is_bool_dtype(tasks[column]):
            rows[column] = np.where(tasks[column].to_numpy(bool), BULK_TRUE, BULK_FALSE)
    return rows


def _upsert_tasks(
    runner: JobRunner, rows: pd.DataFrame, options: LoadOptions, kind: ActivityKind = TASKS
) -> pd.DataFrame:
    """Upsert, then re-send without create-only fields the rows that turned out to exist.

    TaskSubtype can be set when a Task is created, never changed: Salesforce refuses the
    whole row of an upsert that matches an existing Task (EventSubtype the same for an
    Event). Which keys exist is not known before the upsert, and asking first would cost a
    query per chunk on every run, while this costs one extra job only on re-runs.
    """
    ext = options.external_id_field
    spec = JobSpec(
        kind.object_name, Operation.UPSERT, (ext,), ext, kind.clearable, kind.create_only
    )
    out = runner.run(spec, rows)
    refused = out["error_code"].eq(INVALID_FIELD_FOR_INSERT_UPDATE) & out[
        "error_message"
    ].str.contains("|".join(kind.create_only), regex=True)
    if not refused.any():
        return out
    again = rows[rows[ext].isin(out.loc[refused, ext])].drop(columns=list(kind.create_only))
    log.info(
        "re-sending %d existing %ss without %s",
        len(again),
        kind.object_name,
        ", ".join(kind.create_only),
    )
    return pd.concat([out[~refused], runner.run(spec, again)], ignore_index=True)


def _existing_relations(
    client: SalesforceClient,
    task_ids: pd.Series,
    options: LoadOptions,
    kind: ActivityKind = TASKS,
) -> pd.DataFrame:
    """The person rows Salesforce already holds for these Tasks (or Salesforce Events).

    Few Tasks: REST queries, whose Id lists must fit in a URI. Many (a re-run or backfill
    of a big hour): Bulk API 2.0 query jobs, whose SOQL may run to 100,000 characters,
    so each job covers thousands of Tasks for a handful of calls. Both as ``queryAll``:
    Salesforce archives Tasks a year old, and ``query`` leaves out the relations of an
    archived Task, which a backfill of an old hour would then insert a second time.
    Columns: the pair and ``relates`` (False for an Event's invitee-only row).
    """
    ids = task_ids.drop_duplicates().tolist()
    bulk = len(ids) > options.relation_rest_max
    chunk = options.relation_bulk_chunk if bulk else options.relation_query_chunk
    flag = f", {kind.parent_flag}" if kind.parent_flag else ""
    frames = []
    for start in range(0, len(ids), chunk):
        soql = format_soql(
            f"SELECT {kind.parent_field}, RelationId{flag} FROM {kind.relation_object} "
            f"WHERE IsWhat = false AND IsDeleted = false AND {kind.parent_field} IN {{}}",
            ids[start : start + chunk],
        )
        query = client.bulk_query if bulk else client.query
        frames.append(query(soql, include_deleted=True))
    found = [f for f in frames if not f.empty]
    if not found:
        return pd.DataFrame(columns=[*kind.pair, "relates"])
    rows = pd.concat(found, ignore_index=True)
    relates = (
        rows[kind.parent_flag].astype(str).str.lower().eq(BULK_TRUE)
        if kind.parent_flag
        else pd.Series(True, index=rows.index)
    )
    return rows[kind.pair].assign(relates=relates.to_numpy())


def load_plan(
    plan: Plan,
    client: SalesforceClient,
    options: LoadOptions | None = None,
    ledger: JobLedger | None = None,
) -> LoadResult:
    """Make Salesforce hold the plan's Tasks, Salesforce Events and their relations, once.

    Args:
        plan: one org's plan for one interval (``tasks``, ``relations``,
            ``salesforce_events`` and ``event_relations`` are read).
        client: that org's Salesforce; its call and job counters feed the summary.
        options: external-ID field, row retries, upload size and relation-read chunking;
            defaults if None.
        ledger: where job ids are written before their data is uploaded, and where the
            unfinished jobs of earlier attempts of this load are found (waited for before
            anything is sent). None keeps them in memory only.

    Returns:
        A :class:`LoadResult`: one row per planned Task (``task_results``) and Salesforce
        Event (``event_results``), one per planned relation (``relation_results``,
        ``event_relation_results``; ``status`` one of :class:`RelationStatus`), the rows
        that are not in Salesforce (``dead_letter``: failed activities and relations, and
        the relations of failed activities) and the counts (``summary``). A row
        Salesforce refuses is a result, not an exception; a Salesforce that stays
        unreachable raises :class:`~activity_sync.salesforce.SalesforceUnavailable`.
    """
    options = options or LoadOptions()
    ledger = ledger or JobLedger()
    calls_before, jobs_before = client.total_calls, client.bulk_jobs
    runner = JobRunner(
        client,
        attempts=options.row_attempts,
        retry_wait=options.row_retry_wait,
        max_upload_bytes=options.max_upload_bytes,
        ledger=ledger,
    )
    earlier = runner.settle_earlier_jobs()
    task_results, relation_results = _load_activities(
        client, runner, plan.tasks, plan.relations, options, TASKS
    )
    event_results, event_relation_results = _load_activities(
        client, runner, plan.salesforce_events, plan.event_relations, options, SALESFORCE_EVENTS
    )
    dead_letter = pd.concat(
        [
            load_results.dead_letter(task_results, relation_results, options.row_attempts, TASKS),
            load_results.dead_letter(
                event_results, event_relation_results, options.row_attempts, SALESFORCE_EVENTS
            ),
        ],
        ignore_index=True,
    )
    summary = {
        **load_results.counts(plan.tasks, plan.relations, task_results, relation_results, TASKS),
        **load_results.counts(
            plan.salesforce_events,
            plan.event_relations,
            event_results,
            event_relation_results,
            SALESFORCE_EVENTS,
        ),
        "dead_letter": len(dead_letter),
        "earlier_jobs_settled": earlier,
        "api_calls": client.total_calls - calls_before,
        "bulk_jobs": client.bulk_jobs - jobs_before,
    }
    ledger.finish()
    log.info("load summary: %s", summary)
    return LoadResult(
        task_results,
        relation_results,
        dead_letter,
        summary,
        event_results,
        event_relation_results,
    )


def _load_activities(
    client: SalesforceClient,
    runner: JobRunner,
    activities: pd.DataFrame,
    relations: pd.DataFrame,
    options: LoadOptions,
    kind: ActivityKind,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Steps 1-4 for one kind: upsert, match relations to Ids, mark existing, insert."""
    results = _load_tasks(runner, activities, options, kind)
    marked = _relations_by_task_id(relations, results, kind)
    to_insert = _mark_existing_relations(client, marked, options, kind)
    _insert_relations(client, runner, marked, to_insert, kind)
    return results, marked[relation_result_columns(kind)].reset_index(drop=True)


def _load_tasks(
    runner: JobRunner, tasks: pd.DataFrame, options: LoadOptions, kind: ActivityKind = TASKS
) -> pd.DataFrame:
    """Step 1: upsert the activities on the external key; one ``result_columns`` row each."""
    ext = options.external_id_field
    out = pd.DataFrame(columns=[ext, "sf_id", "created", "error_code", "error_message", "attempts"])
    if not tasks.empty:
        out = _upsert_tasks(runner, _task_fields(tasks, ext, kind), options, kind)
    return pd.DataFrame(
        {
            kind.key: out[ext],
            "Id": out["sf_id"],
            "created": out["created"].astype(bool),
            "success": out["error_code"].eq(""),
            "error_code": out["error_code"].replace("", None),
            "error_message": out["error_message"].replace("", None),
            "attempts": out["attempts"].astype("int64"),
        },
        columns=result_columns(kind),
    )


def _relations_by_task_id(
    relations: pd.DataFrame, task_results: pd.DataFrame, kind: ActivityKind = TASKS
) -> pd.DataFrame:
    """Step 2: each planned relation with its activity's Salesforce Id and a first status.

    The primary contact needs no row of ours (Salesforce relates the WhoId itself), and a
    relation whose activity did not load cannot be made; the rest stay to be decided.
    """
    loaded = task_results[task_results["success"]]
    out = relations.merge(loaded[[kind.key, "Id", "created"]], on=kind.key, how="left")
    out = out.rename(columns={"Id": kind.parent_field})
    out["status"] = kind.parent_failed
    out["error_code"] = None
    out["error_message"] = None
    out.loc[out[kind.parent_field].notna() & out["is_primary"], "status"] = RelationStatus.PRIMARY
    return out


def _mark_existing_relations(
    client: SalesforceClient,
    relations: pd.DataFrame,
    options: LoadOptions,
    kind: ActivityKind = TASKS,
) -> pd.DataFrame:
    """Step 3: mark the relations Salesforce already holds; return the pairs still to
    make, indexed like ``relations``, with ``relates`` False where a row exists that only
    invites (an Event's invitee: made to relate rather than inserted).

    Only activities that existed before this load can hold any, so a first load reads
    nothing.
    """
    pair = kind.pair
    candidates = relations[relations[kind.parent_field].notna() & ~relations["is_primary"]]
    retouched = candidates.loc[~candidates["created"].astype(bool), kind.parent_field]
    existing = (
        _existing_relations(client, retouched, options, kind)
        if not retouched.empty
        else pd.DataFrame(columns=[*pair, "relates"])
    )
    marked = candidates[pair].merge(existing, on=pair, how="left")
    # True: a row relates the person; False: a row only invites them; NaN: no row.
    exists = marked["relates"].eq(True).to_numpy()
    invited = marked["relates"].eq(False).to_numpy()
    relations.loc[candidates.index[exists], "status"] = RelationStatus.EXISTING
    return candidates.loc[~exists, pair].assign(relates=~invited[~exists])


def _insert_relations(
    client: SalesforceClient,
    runner: JobRunner,
    relations: pd.DataFrame,
    to_insert: pd.DataFrame,
    kind: ActivityKind = TASKS,
) -> None:
    """Step 4: make the missing relations and record each outcome in ``relations``.

    DUPLICATE_VALUE means the relation is there already: what a retried insert job gives.
    An Event's invitee rows are updated to relate (IsParent true) instead.
    """
    if to_insert.empty:
        return
    pair = kind.pair
    outcomes = []
    new = to_insert[to_insert["relates"].astype(bool)][pair]
    invited = to_insert[~to_insert["relates"].astype(bool)][pair]
    if not invited.empty:
        related, gone = _relate_invitees(client, runner, invited, kind)
        outcomes.append(related)
        new = pd.concat([new, gone], ignore_index=True)
    if not new.empty:
        flags = (kind.parent_flag,) if kind.parent_flag else ()
        rows = new.assign(**dict.fromkeys(flags, BULK_TRUE))
        spec = JobSpec(kind.relation_object, Operation.INSERT, tuple(pair))
        inserted = runner.run(spec, rows)
        code = inserted["error_code"]
        inserted["status"] = np.select(
            [code.eq(""), code.eq(DUPLICATE_VALUE)],
            [RelationStatus.INSERTED, RelationStatus.EXISTING],
            RelationStatus.FAILED,
        )
        outcomes.append(inserted)
    done = pd.concat(outcomes, ignore_index=True)
    index = relations.reset_index()[["index", *pair]].merge(done, on=pair)
    relations.loc[index["index"], "status"] = index["status"].to_numpy()
    failed = index[index["status"].eq(RelationStatus.FAILED)]
    relations.loc[failed["index"], "error_code"] = failed["error_code"].to_numpy()
    relations.loc[failed["index"], "error_message"] = failed["error_message"].to_numpy()


def _relate_invitees(
    client: SalesforceClient, runner: JobRunner, invited: pd.DataFrame, kind: ActivityKind
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Set the relating flag on rows that only invite a planned person (someone invited
    the Contact in Salesforce): one row per person and Event, so it is updated, not added.

    Returns the outcomes (``related`` or ``failed``) and the pairs whose invitee row is
    gone since it was read, which are then inserted like any missing relation.
    """
    pair = kind.pair
    soql = format_soql(
        f"SELECT Id, {kind.parent_field}, RelationId FROM {kind.relation_object} "
        f"WHERE IsWhat = false AND {kind.parent_flag} = false AND IsDeleted = false "
        f"AND {kind.parent_field} IN {{}}",
        invited[kind.parent_field].drop_duplicates().tolist(),
    )
    # queryAll, as for the existing relations: an archived Event's rows too.
    found = client.query(soql, include_deleted=True).reindex(columns=["Id", *pair])
    rows = invited.merge(found, on=pair)
    marked = invited.merge(found[pair], on=pair, how="left", indicator=True)
    gone = marked.loc[marked["_merge"].eq("left_only"), pair]
    if rows.empty:
        return pd.DataFrame(columns=[*pair, "status"]), gone
    spec = JobSpec(kind.relation_object, Operation.UPDATE, ("Id",))
    updated = runner.run(spec, rows[["Id"]].assign(**{kind.parent_flag: BULK_TRUE}))
    out = rows[[*pair, "Id"]].merge(updated, on="Id", how="left").drop(columns=["Id", "sf_id"])
    out["status"] = np.where(
        out["error_code"].fillna("").eq(""), RelationStatus.RELATED, RelationStatus.FAILED
    )
    return out, gone
