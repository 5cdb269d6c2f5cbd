"""load.py against a hand-written Salesforce fake: retries, dead letters, relation reads (R11).

The fake (tests/support/fake_bulk.py) stands at the boundary the loader talks to and keeps Tasks
and TaskRelations like an org would, so the tests check the end state and the calls made.
Job-level behaviour (parts, lost results, earlier attempts) is in test_load_jobs.py;
loads over HTTPS against the emulator in test_load_salesforce.py and test_sync_dag.py.
"""

from __future__ import annotations

import pytest
from fake_bulk import FakeOrg, make_plan

from activity_sync.bulk import BULK_NULL
from activity_sync.load import LoadOptions, load_plan


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
