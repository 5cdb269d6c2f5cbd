"""load.py against a hand-written Salesforce fake: retries, dead letters, relation reads (R11).

The fake stands at the boundary the loader talks to (``ingest`` and ``query`` of
``SalesforceClient``) and keeps Tasks and TaskRelations like an org would, so the tests
check the end state and the calls made. End-to-end loads over HTTP against the emulator
live in test_sync.py.
"""

from __future__ import annotations

import io
import itertools

import pandas as pd
import pytest

from activity_sync.bulk import BULK_NULL, IngestResult
from activity_sync.load import LoadOptions, load_plan
from activity_sync.schema import RELATION_COLUMNS, TASK_COLUMNS, Plan
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD as EXT

RESULTS = {"successful": 0, "failed": 1, "unprocessed": 2}


class FakeOrg:
    """Tasks keyed by external id, relation pairs, and scripted failures.

    ``fail`` scripts row-level errors by row key; ``job_fates`` scripts whole jobs, by
    the order they are submitted: ``"failed_silent"`` ends Failed before processing with
    three empty result files (as Salesforce may for InvalidBatch), ``"unprocessed"``
    ends Failed listing every row as unprocessed, ``"drops_half"`` completes but reports
    only the first half of its rows. Jobs receive the CSV bytes the loader sends.
    """

    def __init__(
        self, fail: dict[str, list[str]] | None = None, job_fates: dict[int, str] | None = None
    ) -> None:
        self.tasks: dict[str, dict] = {}
        self.relations: set[tuple[str, str]] = set()
        self.fail = fail or {}  # row key -> error codes to return on successive attempts
        self.job_fates = job_fates or {}
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

    def _apply(self, object_name: str, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        ok, failed = [], []
        for row in rows:
            if object_name == "Task":
                key = row[EXT]
                code = self._failure(key)
                if code:
                    failed.append({"sf__Id": "", "sf__Error": f"{code}:boom:--", **row})
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
        rows = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
        self.jobs.append((object_name, operation, len(rows)))
        self.bulk_jobs += 1
        records = rows.to_dict("records")
        state, unprocessed = "JobComplete", []
        if fate == "failed_silent":
            state, records = "Failed", []
        elif fate == "unprocessed":
            state, unprocessed, records = "Failed", records, []
        elif fate == "drops_half":
            records = records[: len(records) // 2]
        ok, failed = self._apply(object_name, records)
        if fate == "drops_half":
            ok = ok[: len(ok) // 2] if ok else ok  # processed, yet half never reported
        self.results[job_id] = IngestResult(
            job_id,
            state,
            pd.DataFrame(ok, dtype=object),
            pd.DataFrame(failed, dtype=object),
            pd.DataFrame(unprocessed, dtype=object),
        )
        return self.results[job_id]

    def job_status(self, kind, job_id) -> dict:
        return {"id": job_id, "state": self.results[job_id].state}

    def settle_ingest_job(self, job_id) -> IngestResult:
        return self.results[job_id]

    def upsert_records(self, object_name, external_id_field, rows) -> IngestResult:
        self.rest_upserts.append(rows)
        ok, failed = self._apply(object_name, rows.to_dict("records"))
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


def test_first_load_creates_tasks_and_only_the_non_primary_relations_without_reading_any():
    org = FakeOrg()
    result = load_plan(make_plan(n_contacts=3, n_tasks=2), org)
    assert len(org.tasks) == 2
    assert len(org.relations) == 4  # Salesforce makes the primary's relation itself
    assert org.queries == []
    assert result.summary["tasks_created"] == 2
    assert result.summary["relations_inserted"] == 4
    assert set(result.relation_results["status"]) == {"primary", "inserted"}
    assert result.dead_letter.empty


def test_reload_updates_tasks_reads_their_relations_and_inserts_nothing():
    org = FakeOrg()
    plan = make_plan(n_contacts=3, n_tasks=2)
    load_plan(plan, org)
    jobs_before = len(org.jobs)
    result = load_plan(plan, org)
    assert len(org.tasks) == 2 and len(org.relations) == 4
    assert result.summary["tasks_updated"] == 2
    assert result.summary["relations_existing"] == 4
    assert len(org.queries) == 1
    assert [j[0] for j in org.jobs[jobs_before:]] == ["Task"]  # no relation job at all


def test_resumed_load_inserts_only_the_relations_that_are_missing():
    org = FakeOrg()
    plan = make_plan(n_contacts=5)
    load_plan(plan, org)
    task_id = next(iter(org.tasks.values()))["Id"]
    lost = sorted(org.relations)[:2]
    org.relations -= set(lost)
    result = load_plan(plan, org)
    assert org.jobs[-1] == ("TaskRelation", "insert", 2)
    assert all(t == task_id for t, _ in lost)
    assert len(org.relations) == 4
    assert result.summary["relations_inserted"] == 2
    assert result.summary["relations_existing"] == 2


def test_row_lock_failures_are_retried_until_they_succeed():
    org = FakeOrg(fail={"as1_task0": ["UNABLE_TO_LOCK_ROW", "UNABLE_TO_LOCK_ROW"]})
    result = load_plan(make_plan(n_tasks=2), org, LoadOptions(row_attempts=4))
    assert [j[2] for j in org.jobs if j[0] == "Task"] == [2, 1, 1]
    row = result.task_results.set_index("task_key").loc["as1_task0"]
    assert row["success"] and row["attempts"] == 3
    assert result.dead_letter.empty


def test_rows_still_locked_after_every_attempt_are_dead_lettered_with_the_error():
    org = FakeOrg(fail={"as1_task0": ["UNABLE_TO_LOCK_ROW"] * 9})
    result = load_plan(make_plan(n_contacts=3), org, LoadOptions(row_attempts=3))
    dead = result.dead_letter
    assert dead.loc[dead["object"] == "Task", ["task_key", "error_code"]].to_dict("records") == [
        {"task_key": "as1_task0", "error_code": "UNABLE_TO_LOCK_ROW"}
    ]
    assert set(result.relation_results["status"]) == {"task_failed"}
    assert len(org.jobs) == 3


def test_relations_of_a_dead_lettered_task_are_dead_lettered_too_naming_its_failure():
    """Issue 12 item 9: the dead letter alone lists everything that is not in Salesforce."""
    org = FakeOrg(fail={"as1_task1": ["FIELD_INTEGRITY_EXCEPTION"]})
    result = load_plan(make_plan(n_contacts=3, n_tasks=2), org)
    relations = result.dead_letter[result.dead_letter["object"] == "TaskRelation"]
    planned = make_plan(n_contacts=3, n_tasks=2).relations
    assert sorted(relations["RelationId"]) == sorted(
        planned.loc[planned["task_key"] == "as1_task1", "RelationId"]
    )
    assert set(relations["error_code"]) == {"TASK_FAILED"}
    assert (
        relations["error_message"]
        .str.startswith("its Task was not loaded: FIELD_INTEGRITY_EXCEPTION: boom")
        .all()
    )
    assert (relations["attempts"] == 0).all()
    assert result.summary["dead_letter"] == 1 + 3


def test_a_permanent_task_error_is_dead_lettered_at_once_and_its_relations_recorded():
    org = FakeOrg(fail={"as1_task1": ["FIELD_INTEGRITY_EXCEPTION"]})
    result = load_plan(make_plan(n_contacts=2, n_tasks=2), org)
    assert [j for j in org.jobs if j[0] == "Task"] == [("Task", "upsert", 2)]
    dead = result.dead_letter.iloc[0]
    assert dead["object"] == "Task"
    assert (dead["task_key"], dead["error_code"], dead["attempts"]) == (
        "as1_task1",
        "FIELD_INTEGRITY_EXCEPTION",
        1,
    )
    statuses = result.relation_results.groupby("task_key")["status"].apply(set).to_dict()
    assert statuses == {"as1_task0": {"primary", "inserted"}, "as1_task1": {"task_failed"}}
    # nothing lost: every planned relation has a recorded outcome
    assert len(result.relation_results) == 4


def test_a_relation_reported_duplicate_counts_as_already_there():
    org = FakeOrg()
    plan = make_plan(n_contacts=2)
    load_plan(plan, org)
    org.tasks.clear()  # Salesforce forgot the Task was ours: the upsert creates it again
    org.ids = iter(["00T000000000000000"])  # ...with the same Id, so the pair already exists
    result = load_plan(plan, org)
    assert result.summary["relations_existing"] == 1
    assert result.dead_letter.empty


def test_relation_failures_other_than_duplicates_are_dead_lettered():
    contact = "003000000000000001"
    org = FakeOrg(fail={contact: ["INVALID_CROSS_REFERENCE_KEY"]})
    result = load_plan(make_plan(n_contacts=3), org)
    assert result.dead_letter[["object", "RelationId", "error_code"]].to_dict("records") == [
        {
            "object": "TaskRelation",
            "RelationId": contact,
            "error_code": "INVALID_CROSS_REFERENCE_KEY",
        }
    ]
    assert result.summary["relations_failed"] == 1


@pytest.mark.parametrize("column", ["WhatId", "Description"])
def test_empty_clearable_fields_are_sent_as_bulk_null_so_an_update_clears_them(column):
    org = FakeOrg()
    load_plan(make_plan(), org)
    assert next(iter(org.tasks.values()))[column] == BULK_NULL


def test_a_big_reload_reads_existing_relations_through_bulk_queries_in_large_chunks():
    org = FakeOrg()
    plan = make_plan(n_contacts=2, n_tasks=5)
    load_plan(plan, org)
    options = LoadOptions(relation_rest_max=3, relation_bulk_chunk=2)
    result = load_plan(plan, org, options)
    assert len(org.bulk_queries) == 3  # 5 Tasks, 2 per Bulk query job
    assert result.summary["relations_existing"] == 5


def test_a_small_reload_reads_existing_relations_over_rest_in_uri_sized_chunks():
    org = FakeOrg()
    plan = make_plan(n_contacts=2, n_tasks=5)
    load_plan(plan, org)
    load_plan(plan, org, LoadOptions(relation_query_chunk=2))
    assert org.bulk_queries == []
    assert len(org.queries) == 3
