"""A hand-written Salesforce at the loader's boundary: Bulk jobs, REST upserts, queries.

``FakeOrg`` keeps Tasks and TaskRelations like an org would and receives the CSV bytes
the loader sends, so tests check the end state, the jobs and the calls made; whole jobs
and single rows can be scripted to fail. ``make_plan`` builds small plans.
"""

from __future__ import annotations

import dataclasses
import io
import itertools

import pandas as pd

from activity_sync.bulk import IngestResult
from activity_sync.schema import RELATION_COLUMNS, TASK_COLUMNS, Plan
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD as EXT


class WorkerKilled(BaseException):
    """The load task dies here (a BaseException, as a signal would end it)."""


class FakeOrg:
    """Tasks keyed by external id, relation pairs, and scripted failures.

        ``fail`` scripts row-level errors by row key (a code, or a whole ``sf__Error``; a Task
        upsert's ``DUPLICATE_VALUE`` is a lost race: the Task exists and the error names it); ``job_fates`` scripts whole jobs, by
        the order they are submitted: ``"failed_silent"`` ends Failed before processing with
        three empty result files (as Salesforce may for InvalidBatch), ``"unprocessed"``
        ends Failed listing every row as unprocessed, ``"drops_half"`` completes but reports
        only the first half of its rows, ``"reordered"`` lists its results in another order
    than its rows, ``"killed_before_upload"`` kills the loader after
        the job was created (it stays Open), ``"killed_while_waiting"`` after the job ran.
    """

    def __init__(
        self, fail: dict[str, list[str]] | None = None, job_fates: dict[int, str] | None = None
    ) -> None:
        self.tasks: dict[str, dict] = {}
        self.relations: set[tuple[str, str]] = set()
        self.fail = fail or {}  # row key -> error codes to return on successive attempts
        self.archived: set[str] = set()  # Task keys upserts cannot match (archived Tasks)
        self.job_fates = job_fates or {}
        self.aborted: list[str] = []  # job ids the loader aborted
        self.jobs: list[tuple[str, str, int]] = []
        self.bodies: list[bytes] = []
        self.results: dict[str, IngestResult] = {}
        self.rest_upserts: list[pd.DataFrame] = []
        self.queries: list[tuple[str, bool]] = []
        self.bulk_queries: list[tuple[str, bool]] = []
        self.ids = (f"00T{n:015d}" for n in itertools.count())
        self.total_calls = 0
        self.bulk_jobs = 0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def _failure(self, key: str) -> str | None:
        codes = self.fail.get(key)
        return codes.pop(0) if codes else None

    def _apply(
        self, object_name: str, rows: list[dict], operation: str = "upsert"
    ) -> tuple[list[dict], list[dict]]:
        ok, failed = [], []
        for row in rows:
            if object_name == "Task":
                key = row[EXT]
                code = self._failure(key)
                if code == "DUPLICATE_VALUE" and operation == "upsert":
                    # A lost race on the key: another job's upsert created the Task, and
                    # Salesforce names it.
                    self.tasks.setdefault(key, {"Id": next(self.ids), EXT: key})
                    error = (
                        f"DUPLICATE_VALUE:duplicate value found: {EXT} duplicates value on "
                        f"record with id: {self.tasks[key]['Id']}:--"
                    )
                    failed.append({"sf__Id": "", "sf__Error": error, **row})
                    continue
                if code:
                    error = code if ":" in code else f"{code}:boom:--"
                    failed.append({"sf__Id": "", "sf__Error": error, **row})
                    continue
                if operation == "update":
                    if "TaskSubtype" in row:
                        error = "INVALID_FIELD_FOR_INSERT_UPDATE:cannot change:TaskSubtype"
                        failed.append({"sf__Id": row["Id"], "sf__Error": error, **row})
                        continue
                    held = next(t for t in self.tasks.values() if t["Id"] == row["Id"])
                    held.update({k: v for k, v in row.items() if k != "Id"})
                    ok.append({"sf__Id": row["Id"], "sf__Created": "false", **row})
                    continue
                if key in self.archived:  # upsert does not see it; the unique key does
                    error = (
                        f"DUPLICATE_VALUE:duplicate value found: {EXT} duplicates value on "
                        f"record with id: {self.tasks[key]['Id']}:--"
                    )
                    failed.append({"sf__Id": "", "sf__Error": error, **row})
                    continue
                created = key not in self.tasks
                if created:
                    self.tasks[key] = {"Id": next(self.ids)}
                self.tasks[key].update(row)
                ok.append({"sf__Id": self.tasks[key]["Id"], "sf__Created": str(created), **row})
            else:
                pair = (row["TaskId"], row["RelationId"])
                code = self._failure(row["RelationId"])
                if pair in self.relations:
                    code = "DUPLICATE_VALUE"
                if code:
                    failed.append({"sf__Id": "", "sf__Error": f"{code}:no:--", **row})
                    continue
                self.relations.add(pair)
                ok.append({"sf__Id": "07R", "sf__Created": "true", **row})
        return ok, failed

    def ingest(
        self, object_name, operation, body, *, external_id_field=None, on_created=None
    ) -> IngestResult:
        job_id = f"750{len(self.bodies):015d}"
        if on_created:
            on_created(job_id)
        fate = self.job_fates.get(len(self.bodies))
        self.bodies.append(body)
        if fate == "killed_before_upload":
            self.results[job_id] = IngestResult(job_id, "Open", *[pd.DataFrame()] * 3)
            raise WorkerKilled(job_id)
        rows = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
        self.jobs.append((object_name, operation, len(rows)))
        self.bulk_jobs += 1
        records = rows.to_dict("records")
        state, unprocessed = "JobComplete", []
        if fate == "failed_silent":
            state, records = "Failed", []
        elif fate == "unprocessed":
            state, unprocessed, records = "Failed", records, []
        ok, failed = self._apply(object_name, records, operation)
        if fate == "drops_half":
            ok = ok[: len(ok) // 2]  # every row processed, half never reported
        if fate == "reordered":  # Salesforce documents no order for result rows
            ok, failed = ok[::-1], failed[1:] + failed[:1]
        self.results[job_id] = IngestResult(
            job_id,
            state,
            pd.DataFrame(ok, dtype=object),
            pd.DataFrame(failed, dtype=object),
            pd.DataFrame(unprocessed, dtype=object),
        )
        if fate == "killed_while_waiting":
            raise WorkerKilled(job_id)
        return self.results[job_id]

    def job_status(self, kind, job_id) -> dict:
        return {"id": job_id, "state": self.results[job_id].state}

    def abort_job(self, kind, job_id) -> None:
        self.aborted.append(job_id)
        self.results[job_id] = dataclasses.replace(self.results[job_id], state="Aborted")

    def settle_ingest_job(self, job_id) -> IngestResult:
        return self.results[job_id]

    def upsert_records(self, object_name, external_id_field, rows, clearable=()) -> IngestResult:
        self.rest_upserts.append(rows)
        ok, failed = self._apply(object_name, rows.to_dict("records"))
        return IngestResult(
            "", "JobComplete", pd.DataFrame(ok, dtype=object), pd.DataFrame(failed), pd.DataFrame()
        )

    def update_records(self, object_name, rows, clearable=()) -> IngestResult:
        self.rest_upserts.append(rows)
        ok, failed = self._apply(object_name, rows.to_dict("records"), "update")
        return IngestResult(
            "", "JobComplete", pd.DataFrame(ok, dtype=object), pd.DataFrame(failed), pd.DataFrame()
        )

    def query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        self.queries.append((soql, include_deleted))
        rows = [{"TaskId": t, "RelationId": r} for t, r in self.relations if t in soql]
        return pd.DataFrame(rows, columns=["TaskId", "RelationId"])

    def bulk_query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        self.bulk_queries.append((soql, include_deleted))
        rows = [{"TaskId": t, "RelationId": r} for t, r in self.relations if t in soql]
        return pd.DataFrame(rows, columns=["TaskId", "RelationId"])


def make_plan(n_contacts: int = 3, n_tasks: int = 1) -> Plan:
    tasks, relations = [], []
    for t in range(n_tasks):
        key = f"as1_task{t}"
        who = [f"003{t:03d}{c:012d}" for c in range(n_contacts)]
        tasks.append(
            {
                "task_key": key,
                "org_id": "acme",
                "event_id": f"e{t}",
                "event_type": "sent",
                "WhoId": who[0],
                "WhatId": None,
                "OwnerId": None,
                "Subject": "Email: hi",
                "Description": "",
                "ActivityDate": "2026-11-27",
                "Status": "Completed",
                "TaskSubtype": "Email",
                "who_count": n_contacts,
                "batch_index": 0,
            }
        )
        relations += [
            {"task_key": key, "RelationId": w, "position": i, "is_primary": i == 0}
            for i, w in enumerate(who)
        ]
    return Plan(
        pd.DataFrame(tasks, columns=TASK_COLUMNS),
        pd.DataFrame(relations, columns=RELATION_COLUMNS),
        pd.DataFrame(),
        {},
    )
