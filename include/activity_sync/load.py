"""Load a plan into Salesforce exactly once (R11).

Tasks are upserted on the external key, so a re-run or a resumed run updates instead of
duplicating. TaskRelation rows cannot be upserted, so before inserting the loader reads
which already exist — but only for Tasks the upsert reports as not newly created, since a
Task created by this very job cannot carry relations yet. A relation reported as a
duplicate is counted as already there: that is what a retried insert job produces.
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

from activity_sync.salesforce import (
    DUPLICATE_VALUE,
    INVALID_FIELD_FOR_INSERT_UPDATE,
    RESULT_CREATED,
    RESULT_ERROR,
    RESULT_ID,
    TRANSIENT_ROW_CODES,
    Operation,
    SalesforceClient,
)
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
BULK_NULL = "#N/A"
# Fields Salesforce lets an insert set but no update change.
CREATE_ONLY = ("TaskSubtype",)

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
# error_code of rows a job left unprocessed (a job that failed or was aborted midway).
UNPROCESSED = "UNPROCESSED"


class RelationStatus(StrEnum):
    """What became of one planned relation (``relation_results.status``)."""

    PRIMARY = "primary"  # the Task's WhoId: Salesforce relates it, nothing to insert
    INSERTED = "inserted"
    EXISTING = "existing"  # already held, or reported DUPLICATE_VALUE by the insert
    FAILED = "failed"  # refused for good: in the dead letter
    TASK_FAILED = "task_failed"  # its Task did not load, so it could not be made


@dataclass(frozen=True)
class LoadOptions:
    """How :func:`load_plan` talks to one org.

    Attributes:
        external_id_field: the Task field holding ``task_key``, upserted on (R11).
        row_attempts: jobs a row gets when Salesforce could not lock it or did not
            process it; after the last, the row goes to the dead letter.
        row_retry_wait: seconds before the second job, doubling for each later one.
        relation_query_chunk, relation_rest_max, relation_bulk_chunk: how the relations
            of re-touched Tasks are read (see ``_existing_relations``).
    """

    external_id_field: str = DEFAULT_EXTERNAL_ID_FIELD
    row_attempts: int = 4
    row_retry_wait: float = 2.0
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


def _split_error(errors: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split Bulk's ``CODE:message:fields`` into code and message."""
    parts = errors.fillna("").str.split(":", n=1, expand=True).reindex(columns=[0, 1])
    return parts[0].fillna(""), parts[1].fillna("").str.removesuffix(":--")


def _ingest_with_row_retries(
    client: SalesforceClient,
    object_name: str,
    operation: Operation,
    rows: pd.DataFrame,
    key: list[str],
    options: LoadOptions,
    external_id_field: str | None = None,
) -> pd.DataFrame:
    """Run ingest jobs until every row succeeded or failed for good.

    Returns one row per input row: the key columns, ``sf_id``, ``created``, ``error_code``,
    ``error_message`` (empty on success) and ``attempts``. Rows that hit a transient
    row-level error or were left unprocessed go into the next job, after a pause.
    """
    done: list[pd.DataFrame] = []
    pending = rows
    attempt = 0
    last_error = pd.DataFrame(columns=[*key, "error_code", "error_message"])
    while not pending.empty and attempt < options.row_attempts:
        attempt += 1
        if attempt > 1:
            log.info("retrying %d %s rows (attempt %d)", len(pending), object_name, attempt)
            client.sleep(options.row_retry_wait * 2 ** (attempt - 2))
        result = client.ingest(object_name, operation, pending, external_id_field=external_id_field)
        ok = result.successful
        if not ok.empty:
            done.append(
                pd.DataFrame(
                    {
                        **{k: ok[k] for k in key},
                        "sf_id": ok[RESULT_ID],
                        "created": ok[RESULT_CREATED].str.lower().eq("true"),
                        "error_code": "",
                        "error_message": "",
                        "attempts": attempt,
                    }
                )
            )
        failed = result.failed
        retry_keys = [result.unprocessed[key]] if not result.unprocessed.empty else []
        if not failed.empty:
            code, message = _split_error(failed[RESULT_ERROR])
            failed = failed.assign(error_code=code, error_message=message)
            transient = failed["error_code"].isin(TRANSIENT_ROW_CODES)
            final = failed[~transient]
            done.append(
                pd.DataFrame(
                    {
                        **{k: final[k] for k in key},
                        "sf_id": final[RESULT_ID].replace("", None),
                        "created": False,
                        "error_code": final["error_code"],
                        "error_message": final["error_message"],
                        "attempts": attempt,
                    }
                )
            )
            retry_keys.append(failed.loc[transient, key])
            last_error = pd.concat(
                [last_error, failed.loc[transient, [*key, "error_code", "error_message"]]]
            )
        if not result.unprocessed.empty:
            unprocessed = result.unprocessed[key].assign(
                error_code=UNPROCESSED,
                error_message=f"job {result.job_id} ended {result.state}: {result.error_message}",
            )
            last_error = pd.concat([last_error, unprocessed])
        retry = pd.concat(retry_keys) if retry_keys else pd.DataFrame(columns=key)
        pending = pending.merge(retry.drop_duplicates(), on=key, how="inner")
    if not pending.empty:
        gave_up = pending[key].merge(
            last_error.drop_duplicates(subset=key, keep="last"), on=key, how="left"
        )
        done.append(gave_up.assign(sf_id=None, created=False, attempts=attempt))
    if not done:
        return pd.DataFrame(
            columns=[*key, "sf_id", "created", "error_code", "error_message", "attempts"]
        )
    return pd.concat([d for d in done if not d.empty], ignore_index=True)


def task_rows(tasks: pd.DataFrame, external_id_field: str) -> pd.DataFrame:
    """The plan's Tasks as the Bulk upsert sends them: keyed, nulls made clearable."""
    rows = tasks[["task_key", *TASK_FIELDS]].rename(columns={"task_key": external_id_field})
    rows = rows.astype(object).where(rows.notna(), None)
    for column in CLEARABLE:
        rows[column] = rows[column].where(rows[column].notna() & rows[column].ne(""), BULK_NULL)
    return rows


def _upsert_tasks(
    client: SalesforceClient, rows: pd.DataFrame, options: LoadOptions
) -> pd.DataFrame:
    """Upsert, then re-send without create-only fields the rows that turned out to exist.

    TaskSubtype can be set when a Task is created, never changed: Salesforce refuses the
    whole row of an upsert that matches an existing Task. Which keys exist is not known
    before the upsert, and asking first would cost a query per chunk on every run, while
    this costs one extra job only on re-runs.
    """
    ext = options.external_id_field
    out = _ingest_with_row_retries(client, TASK, Operation.UPSERT, rows, [ext], options, ext)
    refused = out["error_code"].eq(INVALID_FIELD_FOR_INSERT_UPDATE) & out[
        "error_message"
    ].str.contains("|".join(CREATE_ONLY), regex=True)
    if not refused.any():
        return out
    again = rows[rows[ext].isin(out.loc[refused, ext])].drop(columns=list(CREATE_ONLY))
    log.info("re-sending %d existing Tasks without %s", len(again), ", ".join(CREATE_ONLY))
    retried = _ingest_with_row_retries(client, TASK, Operation.UPSERT, again, [ext], options, ext)
    return pd.concat([out[~refused], retried], ignore_index=True)


def _existing_relations(
    client: SalesforceClient, task_ids: pd.Series, options: LoadOptions
) -> pd.DataFrame:
    """The contact relations Salesforce already holds for these Tasks.

    Few Tasks: REST queries, whose Id lists must fit in a URI. Many (a re-run or backfill
    of a big hour): Bulk API 2.0 query jobs, whose SOQL may run to 100,000 characters,
    so each job covers thousands of Tasks for a handful of calls.
    """
    ids = task_ids.drop_duplicates().tolist()
    bulk = len(ids) > options.relation_rest_max
    chunk = options.relation_bulk_chunk if bulk else options.relation_query_chunk
    frames = []
    for start in range(0, len(ids), chunk):
        soql = format_soql(
            "SELECT TaskId, RelationId FROM TaskRelation WHERE IsWhat = false AND TaskId IN {}",
            ids[start : start + chunk],
        )
        frames.append(client.bulk_query(soql) if bulk else client.query(soql))
    found = [f for f in frames if not f.empty]
    if not found:
        return pd.DataFrame(columns=RELATION_PAIR)
    return pd.concat(found, ignore_index=True)[RELATION_PAIR]


def load_plan(
    plan: Plan, client: SalesforceClient, options: LoadOptions | None = None
) -> LoadResult:
    """Make Salesforce hold the plan's Tasks and their contact relations, once (R11).

    Args:
        plan: one org's plan for one interval (``plan.tasks`` and ``plan.relations`` are read).
        client: that org's Salesforce; its call and job counters feed the summary.
        options: external-ID field, row retries and relation-read chunking; defaults if None.

    Returns:
        A :class:`LoadResult`: one row per planned Task (``task_results``) and per planned
        relation (``relation_results``, ``status`` one of :class:`RelationStatus`), the
        rows that failed for good (``dead_letter``) and the counts (``summary``). A row
        Salesforce refuses is a result, not an exception; a Salesforce that stays
        unreachable raises :class:`~activity_sync.salesforce.SalesforceUnavailable`.
    """
    options = options or LoadOptions()
    calls_before, jobs_before = client.total_calls, client.bulk_jobs
    task_results = _load_tasks(client, plan.tasks, options)
    relations = _relations_by_task_id(plan.relations, task_results)
    to_insert = _mark_existing_relations(client, relations, options)
    _insert_relations(client, relations, to_insert, options)
    relation_results = relations[RELATION_RESULT_COLUMNS].reset_index(drop=True)
    dead_letter = _dead_letter(task_results, relation_results, options)
    summary = {
        **_counts(plan, task_results, relation_results, dead_letter),
        "api_calls": client.total_calls - calls_before,
        "bulk_jobs": client.bulk_jobs - jobs_before,
    }
    log.info("load summary: %s", summary)
    return LoadResult(task_results, relation_results, dead_letter, summary)


def _load_tasks(
    client: SalesforceClient, tasks: pd.DataFrame, options: LoadOptions
) -> pd.DataFrame:
    """Step 1: upsert the Tasks on the external key; one TASK_RESULT_COLUMNS row each."""
    ext = options.external_id_field
    out = pd.DataFrame(columns=[ext, "sf_id", "created", "error_code", "error_message", "attempts"])
    if not tasks.empty:
        out = _upsert_tasks(client, task_rows(tasks, ext), options)
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


def _insert_relations(
    client: SalesforceClient,
    relations: pd.DataFrame,
    to_insert: pd.DataFrame,
    options: LoadOptions,
) -> None:
    """Step 4: insert the missing relations and record each outcome in ``relations``.

    DUPLICATE_VALUE means the relation is there already: what a retried insert job gives.
    """
    if to_insert.empty:
        return
    inserted = _ingest_with_row_retries(
        client, TASK_RELATION, Operation.INSERT, to_insert, RELATION_PAIR, options
    )
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
    """Step 5: the Tasks and relations that failed for good, for someone to look at."""
    failed_tasks = task_results[~task_results["success"]]
    failed_relations = relation_results[relation_results["status"].eq(RelationStatus.FAILED)]
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
