"""Load a plan into Salesforce exactly once (R11).

Tasks are upserted on the external key, so a re-run or a resumed run updates instead of
duplicating. TaskRelation rows cannot be upserted, so before inserting the loader reads
which already exist — but only for Tasks the upsert reports as not newly created, since a
Task created by this very job cannot carry relations yet. A relation reported as a
duplicate is counted as already there: that is what a retried insert job produces.

The jobs themselves (parts by size, row retries, the record of job ids that lets a
retried task wait for its earlier jobs) are :mod:`activity_sync.load_jobs`'.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from simple_salesforce.format import format_soql

from activity_sync.bulk import (
    DUPLICATE_VALUE,
    INVALID_FIELD_FOR_INSERT_UPDATE,
    MAX_UPLOAD_BYTES,
    Operation,
)
from activity_sync.job_ledger import JobLedger
from activity_sync.load_jobs import JobRunner, JobSpec, bulk_cells
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import TASK_COLUMNS, Plan
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD

log = logging.getLogger(__name__)

TASK, TASK_RELATION = "Task", "TaskRelation"
RELATION_PAIR = ["TaskId", "RelationId"]

# The plan's Salesforce fields are the ones spelled as Salesforce spells them (WhoId, ...);
# the lower-case columns (task_key, who_count, ...) are the plan's own bookkeeping.
TASK_FIELDS = [c for c in TASK_COLUMNS if c[0].isupper()]
# Fields an update must be able to clear; Bulk API treats an empty cell as "leave as is".
CLEARABLE = ("WhatId", "Description")
# Fields Salesforce lets an insert set but no update change.
CREATE_ONLY = ("TaskSubtype",)
# error_code of a relation whose Task is in the dead letter: it could not be made.
TASK_FAILED = "TASK_FAILED"

TASK_RESULT_COLUMNS = [
    "task_key",
    "Id",
    "created",
    "success",
    "error_code",
    "error_message",
    "attempts",
]
RELATION_RESULT_COLUMNS = [
    "task_key",
    "TaskId",
    "RelationId",
    "position",
    "status",
    "error_code",
    "error_message",
]
DEAD_LETTER_COLUMNS = [
    "object",
    "task_key",
    "RelationId",
    "error_code",
    "error_message",
    "attempts",
]


class RelationStatus(StrEnum):
    """What became of one planned relation (``relation_results.status``)."""

    PRIMARY = "primary"  # the Task's WhoId: Salesforce relates it, nothing to insert
    INSERTED = "inserted"
    EXISTING = "existing"  # already held, or reported DUPLICATE_VALUE by the insert
    FAILED = "failed"  # refused for good: in the dead letter
    TASK_FAILED = "task_failed"  # its Task did not load, so it could not be made: dead letter


@dataclass(frozen=True)
class LoadOptions:
    """How :func:`load_plan` talks to one org.

    Attributes:
        external_id_field: the Task field holding ``task_key``, upserted on (R11).
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


@dataclass
class LoadResult:
    """The four outputs of a load, as :func:`write_load_result` writes them."""

    task_results: pd.DataFrame
    relation_results: pd.DataFrame
    dead_letter: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def task_rows(tasks: pd.DataFrame, external_id_field: str) -> pd.DataFrame:
    """The plan's Tasks as the Bulk upsert sends them: keyed, nulls made clearable."""
    return bulk_cells(_task_fields(tasks, external_id_field), CLEARABLE)


def _task_fields(tasks: pd.DataFrame, external_id_field: str) -> pd.DataFrame:
    rows = tasks[["task_key", *TASK_FIELDS]].rename(columns={"task_key": external_id_field})
    return rows.astype(object).where(rows.notna(), None)


def _upsert_tasks(runner: JobRunner, rows: pd.DataFrame, options: LoadOptions) -> pd.DataFrame:
    """Upsert, then re-send without create-only fields the rows that turned out to exist.

    TaskSubtype can be set when a Task is created, never changed: Salesforce refuses the
    whole row of an upsert that matches an existing Task. Which keys exist is not known
    before the upsert, and asking first would cost a query per chunk on every run, while
    this costs one extra job only on re-runs.
    """
    ext = options.external_id_field
    spec = JobSpec(TASK, Operation.UPSERT, (ext,), ext, CLEARABLE, CREATE_ONLY)
    out = runner.run(spec, rows)
    refused = out["error_code"].eq(INVALID_FIELD_FOR_INSERT_UPDATE) & out[
        "error_message"
    ].str.contains("|".join(CREATE_ONLY), regex=True)
    if not refused.any():
        return out
    again = rows[rows[ext].isin(out.loc[refused, ext])].drop(columns=list(CREATE_ONLY))
    log.info("re-sending %d existing Tasks without %s", len(again), ", ".join(CREATE_ONLY))
    return pd.concat([out[~refused], runner.run(spec, again)], ignore_index=True)


def _existing_relations(
    client: SalesforceClient, task_ids: pd.Series, options: LoadOptions
) -> pd.DataFrame:
    """The contact relations Salesforce already holds for these Tasks.

    Few Tasks: REST queries, whose Id lists must fit in a URI. Many (a re-run or backfill
    of a big hour): Bulk API 2.0 query jobs, whose SOQL may run to 100,000 characters,
    so each job covers thousands of Tasks for a handful of calls. Both as ``queryAll``:
    Salesforce archives Tasks a year old, and ``query`` leaves out the relations of an
    archived Task, which a backfill of an old hour would then insert a second time.
    """
    ids = task_ids.drop_duplicates().tolist()
    bulk = len(ids) > options.relation_rest_max
    chunk = options.relation_bulk_chunk if bulk else options.relation_query_chunk
    frames = []
    for start in range(0, len(ids), chunk):
        soql = format_soql(
            "SELECT TaskId, RelationId FROM TaskRelation "
            "WHERE IsWhat = false AND IsDeleted = false AND TaskId IN {}",
            ids[start : start + chunk],
        )
        query = client.bulk_query if bulk else client.query
        frames.append(query(soql, include_deleted=True))
    found = [f for f in frames if not f.empty]
    if not found:
        return pd.DataFrame(columns=RELATION_PAIR)
    return pd.concat(found, ignore_index=True)[RELATION_PAIR]


def load_plan(
    plan: Plan,
    client: SalesforceClient,
    options: LoadOptions | None = None,
    ledger: JobLedger | None = None,
) -> LoadResult:
    """Make Salesforce hold the plan's Tasks and their contact relations, once (R11).

    Args:
        plan: one org's plan for one interval (``plan.tasks`` and ``plan.relations`` are read).
        client: that org's Salesforce; its call and job counters feed the summary.
        options: external-ID field, row retries, upload size and relation-read chunking;
            defaults if None.
        ledger: where job ids are written before their data is uploaded, and where the
            unfinished jobs of earlier attempts of this load are found (waited for before
            anything is sent). None keeps them in memory only.

    Returns:
        A :class:`LoadResult`: one row per planned Task (``task_results``) and per planned
        relation (``relation_results``, ``status`` one of :class:`RelationStatus`), the
        rows that are not in Salesforce (``dead_letter``: failed Tasks and relations, and
        the relations of failed Tasks) and the counts (``summary``). A row Salesforce
        refuses is a result, not an exception; a Salesforce that stays unreachable raises
        :class:`~activity_sync.salesforce.SalesforceUnavailable`.
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
    task_results = _load_tasks(runner, plan.tasks, options)
    relations = _relations_by_task_id(plan.relations, task_results)
    to_insert = _mark_existing_relations(client, relations, options)
    _insert_relations(runner, relations, to_insert)
    relation_results = relations[RELATION_RESULT_COLUMNS].reset_index(drop=True)
    dead_letter = _dead_letter(task_results, relation_results, options)
    summary = {
        **_counts(plan, task_results, relation_results, dead_letter),
        "earlier_jobs_settled": earlier,
        "api_calls": client.total_calls - calls_before,
        "bulk_jobs": client.bulk_jobs - jobs_before,
    }
    ledger.finish()
    log.info("load summary: %s", summary)
    return LoadResult(task_results, relation_results, dead_letter, summary)


def _load_tasks(runner: JobRunner, tasks: pd.DataFrame, options: LoadOptions) -> pd.DataFrame:
    """Step 1: upsert the Tasks on the external key; one TASK_RESULT_COLUMNS row each."""
    ext = options.external_id_field
    out = pd.DataFrame(columns=[ext, "sf_id", "created", "error_code", "error_message", "attempts"])
    if not tasks.empty:
        out = _upsert_tasks(runner, _task_fields(tasks, ext), options)
    return pd.DataFrame(
        {
            "task_key": out[ext],
            "Id": out["sf_id"],
            "created": out["created"].astype(bool),
            "success": out["error_code"].eq(""),
            "error_code": out["error_code"].replace("", None),
            "error_message": out["error_message"].replace("", None),
            "attempts": out["attempts"].astype("int64"),
        },
        columns=TASK_RESULT_COLUMNS,
    )


def _relations_by_task_id(relations: pd.DataFrame, task_results: pd.DataFrame) -> pd.DataFrame:
    """Step 2: each planned relation with its Task's Salesforce Id and a first status.

    The primary contact needs no row of ours (Salesforce relates the WhoId itself), and a
    relation whose Task did not load cannot be made; the rest stay to be decided.
    """
    loaded = task_results[task_results["success"]]
    out = relations.merge(loaded[["task_key", "Id", "created"]], on="task_key", how="left")
    out = out.rename(columns={"Id": "TaskId"})
    out["status"] = RelationStatus.TASK_FAILED
    out["error_code"] = None
    out["error_message"] = None
    out.loc[out["TaskId"].notna() & out["is_primary"], "status"] = RelationStatus.PRIMARY
    return out


def _mark_existing_relations(
    client: SalesforceClient, relations: pd.DataFrame, options: LoadOptions
) -> pd.DataFrame:
    """Step 3: mark the relations Salesforce already holds; return the (TaskId, RelationId)
    pairs still to insert, indexed like ``relations``.

    Only Tasks that existed before this load can hold any, so a first load reads nothing.
    """
    candidates = relations[relations["TaskId"].notna() & ~relations["is_primary"]]
    retouched = candidates.loc[~candidates["created"].astype(bool), "TaskId"]
    existing = (
        _existing_relations(client, retouched, options)
        if not retouched.empty
        else pd.DataFrame(columns=RELATION_PAIR)
    )
    marked = candidates[RELATION_PAIR].merge(
        existing.assign(_exists=True), on=RELATION_PAIR, how="left"
    )
    exists = marked["_exists"].fillna(False).astype(bool).to_numpy()
    relations.loc[candidates.index[exists], "status"] = RelationStatus.EXISTING
    return candidates.loc[~exists, RELATION_PAIR]


def _insert_relations(runner: JobRunner, relations: pd.DataFrame, to_insert: pd.DataFrame) -> None:
    """Step 4: insert the missing relations and record each outcome in ``relations``.

    DUPLICATE_VALUE means the relation is there already: what a retried insert job gives.
    """
    if to_insert.empty:
        return
    spec = JobSpec(TASK_RELATION, Operation.INSERT, tuple(RELATION_PAIR))
    inserted = runner.run(spec, to_insert)
    code = inserted["error_code"]
    inserted["status"] = np.select(
        [code.eq(""), code.eq(DUPLICATE_VALUE)],
        [RelationStatus.INSERTED, RelationStatus.EXISTING],
        RelationStatus.FAILED,
    )
    index = relations.reset_index()[["index", *RELATION_PAIR]].merge(inserted, on=RELATION_PAIR)
    relations.loc[index["index"], "status"] = index["status"].to_numpy()
    failed = index[index["status"].eq(RelationStatus.FAILED)]
    relations.loc[failed["index"], "error_code"] = failed["error_code"].to_numpy()
    relations.loc[failed["index"], "error_message"] = failed["error_message"].to_numpy()


def _dead_letter(
    task_results: pd.DataFrame, relation_results: pd.DataFrame, options: LoadOptions
) -> pd.DataFrame:
    """Step 5: everything planned that is not in Salesforce, with the reason.

    The Tasks and relations that failed for good, and the relations of failed Tasks
    (never sent: ``TASK_FAILED``, the message naming the Task's error), so the dead letter
    alone lists all that is missing.
    """
    failed_tasks = task_results[~task_results["success"]]
    failed_relations = relation_results[relation_results["status"].eq(RelationStatus.FAILED)]
    orphans = relation_results[relation_results["status"].eq(RelationStatus.TASK_FAILED)]
    task_error = failed_tasks.set_index("task_key")
    orphan_code = orphans["task_key"].map(task_error["error_code"]).fillna("").astype(str)
    orphan_message = orphans["task_key"].map(task_error["error_message"]).fillna("").astype(str)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "object": TASK,
                    "task_key": failed_tasks["task_key"],
                    "RelationId": None,
                    "error_code": failed_tasks["error_code"],
                    "error_message": failed_tasks["error_message"],
                    "attempts": failed_tasks["attempts"],
                }
            ),
            pd.DataFrame(
                {
                    "object": TASK_RELATION,
                    "task_key": failed_relations["task_key"],
                    "RelationId": failed_relations["RelationId"],
                    "error_code": failed_relations["error_code"],
                    "error_message": failed_relations["error_message"],
                    "attempts": options.row_attempts,
                }
            ),
            pd.DataFrame(
                {
                    "object": TASK_RELATION,
                    "task_key": orphans["task_key"],
                    "RelationId": orphans["RelationId"],
                    "error_code": TASK_FAILED,
                    "error_message": "its Task was not loaded: "
                    + orphan_code
                    + ": "
                    + orphan_message,
                    "attempts": 0,
                }
            ),
        ],
        ignore_index=True,
    ).reindex(columns=DEAD_LETTER_COLUMNS)


def _counts(
    plan: Plan,
    task_results: pd.DataFrame,
    relation_results: pd.DataFrame,
    dead_letter: pd.DataFrame,
) -> dict[str, int]:
    ok = task_results["success"]
    status = relation_results["status"].value_counts()
    return {
        "tasks_planned": len(plan.tasks),
        "tasks_created": int((ok & task_results["created"]).sum()),
        "tasks_updated": int((ok & ~task_results["created"]).sum()),
        "tasks_failed": int((~ok).sum()),
        "relations_planned": int((~plan.relations["is_primary"]).sum()),
        "relations_inserted": int(status.get(RelationStatus.INSERTED, 0)),
        "relations_existing": int(status.get(RelationStatus.EXISTING, 0)),
        "relations_failed": int(status.get(RelationStatus.FAILED, 0)),
        "relations_task_failed": int(status.get(RelationStatus.TASK_FAILED, 0)),
        "dead_letter": len(dead_letter),
    }


def write_load_result(result: LoadResult, out_dir: Any) -> None:
    """Write the four outputs; ``out_dir`` may be a Path or an ObjectStoragePath."""
    import json

    out = out_dir if not isinstance(out_dir, str) else Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (
        ("task_results", result.task_results),
        ("relation_results", result.relation_results),
        ("dead_letter", result.dead_letter),
    ):
        with (out / f"{name}.parquet").open("wb") as fh:
            frame.to_parquet(fh, index=False)
    with (out / "load_summary.json").open("w") as fh:
        fh.write(json.dumps(result.summary, indent=2, sort_keys=True))
