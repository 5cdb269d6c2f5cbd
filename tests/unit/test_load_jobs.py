"""load_jobs.py: every row sent gets an outcome, jobs are cut by size, earlier jobs are found.

Against the hand-written fake of tests/support/fake_bulk.py, which scripts what a real org does
to whole jobs: fail before processing with empty result files, list rows as unprocessed,
leave rows out of every result file, or outlive the task that submitted them.

Bulk API 2.0 ("Get Job Unprocessed Record Results"): rows a failed or aborted job did not
process are listed in unprocessedrecords —
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_unprocessed_results.htm
"""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from fake_bulk import EXT, FakeOrg, WorkerKilled, make_plan

from activity_sync.bulk import BULK_NULL
from activity_sync.job_ledger import JobLedger, LakeJobLedger
from activity_sync.load import LoadOptions, load_plan, task_rows
from activity_sync.load_jobs import (
    NO_RESULT,
    ROW_TOO_LARGE,
    UNPROCESSED,
    DuplicateRowKeys,
    JobRunner,
    JobSpec,
    split_by_size,
)


def task_jobs(org: FakeOrg) -> list[int]:
    return [rows for obj, _, rows in org.jobs if obj == "Task"]


def test_rows_of_a_job_that_failed_with_empty_results_are_sent_again_not_lost():
    org = FakeOrg(job_fates={0: "failed_silent"})
    result = load_plan(make_plan(n_contacts=2, n_tasks=3), org)
    assert task_jobs(org) == [3, 3]
    assert len(org.tasks) == 3
    assert result.dead_letter.empty
    assert result.task_results["attempts"].eq(2).all()


def test_rows_no_job_ever_reports_are_dead_lettered_no_result_after_the_last_attempt():
    org = FakeOrg(job_fates={n: "failed_silent" for n in range(3)})
    result = load_plan(make_plan(n_contacts=2, n_tasks=2), org, LoadOptions(row_attempts=3))
    assert task_jobs(org) == [2, 2, 2]
    tasks = result.dead_letter[result.dead_letter["object"] == "Task"]
    assert sorted(tasks["task_key"]) == ["as1_task0", "as1_task1"]
    assert set(tasks["error_code"]) == {NO_RESULT}
    assert tasks["error_message"].str.contains("ended Failed").all()
    assert set(tasks["attempts"]) == {3}
    # every planned row has an outcome: 2 Tasks, 4 relations (their Tasks failed)
    assert len(result.dead_letter) == 2 + 4


def test_rows_listed_unprocessed_every_time_are_dead_lettered_unprocessed():
    org = FakeOrg(job_fates={n: "unprocessed" for n in range(2)})
    result = load_plan(make_plan(n_tasks=2), org, LoadOptions(row_attempts=2))
    tasks = result.dead_letter[result.dead_letter["object"] == "Task"]
    assert set(tasks["error_code"]) == {UNPROCESSED}
    assert org.tasks == {}


def test_rows_a_completed_job_left_out_of_its_results_are_sent_again_and_end_loaded_once():
    org = FakeOrg(job_fates={0: "drops_half"})
    result = load_plan(make_plan(n_contacts=2, n_tasks=4), org)
    assert task_jobs(org)[:2] == [4, 2]
    assert len(org.tasks) == 4
    assert result.dead_letter.empty
    assert result.task_results["success"].all()


def test_results_listed_in_another_order_than_the_rows_are_matched_by_key_not_position():
    """Salesforce does not promise result rows in upload order ("Get Job Successful Record
    Results": https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_successful_results.htm)."""
    org = FakeOrg(
        fail={"as1_task1": ["FIELD_INTEGRITY_EXCEPTION"], "as1_task4": ["STRING_TOO_LONG"]},
        job_fates={0: "reordered", 1: "reordered"},
    )
    result = load_plan(make_plan(n_contacts=3, n_tasks=6), org)
    loaded = result.task_results.set_index("task_key")
    held = {key: task["Id"] for key, task in org.tasks.items()}
    assert loaded.loc[loaded["success"], "Id"].to_dict() == held
    assert len(held) == 4
    dead = result.dead_letter[result.dead_letter["object"] == "Task"].set_index("task_key")
    assert dead["error_code"].to_dict() == {
        "as1_task1": "FIELD_INTEGRITY_EXCEPTION",
        "as1_task4": "STRING_TOO_LONG",
    }
    relations = result.dead_letter[result.dead_letter["object"] == "TaskRelation"]
    assert set(relations["task_key"]) == {"as1_task1", "as1_task4"}
    assert {task_id for task_id, _ in org.relations} == set(held.values())


def test_r11_duplicate_value_on_the_external_key_means_the_task_exists_and_is_upserted_again():
    """The losing side of two racing upserts of one Unique key gets DUPLICATE_VALUE."""
    org = FakeOrg(fail={"as1_task0": ["DUPLICATE_VALUE"]})
    result = load_plan(make_plan(n_tasks=2), org)
    assert task_jobs(org) == [2, 1]
    assert result.dead_letter.empty
    assert result.task_results.set_index("task_key").loc["as1_task0", "attempts"] == 2


def test_r11_a_key_race_lost_on_the_last_attempt_gets_one_more_by_id_and_is_never_dead_lettered():
    org = FakeOrg(fail={"as1_task0": ["UNABLE_TO_LOCK_ROW", "DUPLICATE_VALUE"]})
    result = load_plan(make_plan(n_tasks=2), org, LoadOptions(row_attempts=2))
    assert task_jobs(org) == [2, 1, 1]
    assert [op for obj, op, _ in org.jobs if obj == "Task"][-1] == "update"
    assert result.dead_letter.empty
    row = result.task_results.set_index("task_key").loc["as1_task0"]
    assert row["success"] and row["attempts"] == 3
    assert row["Id"] == org.tasks["as1_task0"]["Id"]


def test_a_duplicate_value_on_another_unique_field_is_final_at_once_not_retried():
    """Not a race on the external key: the message names another field, so no Task holds
    this row's key and no retry can fix it."""
    other = (
        "DUPLICATE_VALUE:duplicate value found: Legacy_Id__c duplicates value on record "
        "with id: 00T000000000000999:--"
    )
    org = FakeOrg(fail={"as1_task0": [other]})
    result = load_plan(make_plan(n_tasks=2), org)
    assert task_jobs(org) == [2]
    tasks = result.dead_letter[result.dead_letter["object"] == "Task"]
    assert tasks["task_key"].tolist() == ["as1_task0"]
    assert tasks["error_code"].tolist() == ["DUPLICATE_VALUE"]
    assert tasks["attempts"].tolist() == [1]


@pytest.mark.parametrize("literal", [False, True], ids=["bulk", "rest"])
def test_a_key_held_by_a_task_the_upsert_cannot_match_is_updated_by_the_id_salesforce_names(
    literal,
):
    """What an upsert that matches an archived Task does is not documented; the harsher
    reading is DUPLICATE_VALUE naming the archived Task. The loader then updates that
    Task by Id (without TaskSubtype, which no update may change), and the hour ends
    with the Task once, never dead-lettered."""
    plan = make_plan(n_contacts=2, n_tasks=2)
    org = FakeOrg()
    load_plan(plan, org)
    org.archived.add("as1_task0")
    plan.tasks["Subject"] = "#N/A" if literal else "Email: edited"
    result = load_plan(plan, org)
    assert result.dead_letter.empty
    assert len(org.tasks) == 2
    assert org.tasks["as1_task0"]["Subject"] == plan.tasks.loc[0, "Subject"]
    row = result.task_results.set_index("task_key").loc["as1_task0"]
    assert row["success"] and not row["created"] and row["attempts"] == 2
    assert row["Id"] == org.tasks["as1_task0"]["Id"]
    assert result.summary["relations_existing"] == 2


def test_a_load_bigger_than_the_upload_limit_is_split_so_no_job_is_sent_more():
    plan = make_plan(n_contacts=1, n_tasks=40)
    plan.tasks["Description"] = "x" * 900
    limit = 8_000
    org = FakeOrg()
    result = load_plan(plan, org, LoadOptions(max_upload_bytes=limit))
    assert len(task_jobs(org)) >= 5
    assert sum(task_jobs(org)) == 40
    assert max(len(body) for body in org.bodies) <= limit
    assert len(org.tasks) == 40 and result.dead_letter.empty


def test_each_part_is_retried_on_its_own():
    plan = make_plan(n_contacts=1, n_tasks=20)
    plan.tasks["Description"] = "y" * 900
    org = FakeOrg(job_fates={1: "failed_silent"})
    load_plan(plan, org, LoadOptions(max_upload_bytes=8_000))
    sent = [pd.read_csv(io.BytesIO(b), dtype=str)[EXT].tolist() for b in org.bodies]
    parts = len(sent) - 1
    assert sent[parts] == sent[1], "the retry job holds exactly the failed part's rows"
    assert len(org.tasks) == 20


def test_the_size_estimate_is_an_upper_bound_on_the_csv_sent():
    rows = pd.DataFrame(
        {
            "a": ['quote "this", then\r\na new line', "émoji 😀 text", None],
            "b": ["x" * 50, "", "ü" * 30],
        }
    )
    parts, too_large = split_by_size(rows, limit=10_000)
    assert len(parts) == 1 and too_large.empty
    from activity_sync.bulk import csv_body

    for limit in range(60, 400, 7):
        parts, too_large = split_by_size(rows, limit)
        assert all(len(csv_body(p)) <= limit for p in parts)
        assert sum(map(len, parts)) + len(too_large) == len(rows)


def test_a_row_too_large_for_any_job_is_dead_lettered_and_the_others_load():
    plan = make_plan(n_contacts=1, n_tasks=3)
    plan.tasks.loc[1, "Description"] = "z" * 5_000
    org = FakeOrg()
    result = load_plan(plan, org, LoadOptions(max_upload_bytes=2_000))
    dead = result.dead_letter.set_index("object")
    assert dead.loc[["Task"], ["task_key", "error_code"]].to_dict("records") == [
        {"task_key": "as1_task1", "error_code": ROW_TOO_LARGE}
    ]
    assert sorted(org.tasks) == ["as1_task0", "as1_task2"]


@pytest.mark.parametrize("column", ["Subject", "Description"])
def test_issue_12_a_text_that_is_exactly_the_bulk_null_marker_is_sent_by_rest_as_text(column):
    """A CSV cell of #N/A sets the field to null and Salesforce documents no escape
    (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_csv_valid_record_rows.htm),
    so such rows go through sObject Collections, where JSON tells text from null."""
    plan = make_plan(n_tasks=3)
    plan.tasks.loc[1, column] = BULK_NULL
    org = FakeOrg()
    result = load_plan(plan, org)
    assert org.tasks["as1_task1"][column] == BULK_NULL
    assert [len(r) for r in org.rest_upserts] == [1]
    assert org.rest_upserts[0][EXT].tolist() == ["as1_task1"]
    assert all(b"as1_task1" not in body for body in org.bodies)
    assert result.dead_letter.empty and result.task_results["success"].all()


def test_an_empty_description_still_goes_by_bulk_as_the_null_marker():
    org = FakeOrg()
    load_plan(make_plan(), org)
    assert org.rest_upserts == []
    assert org.tasks["as1_task0"]["Description"] == BULK_NULL


def test_two_rows_with_one_key_are_refused_before_any_job():
    rows = task_rows(make_plan(n_tasks=2).tasks, EXT)
    rows[EXT] = "as1_same"
    org = FakeOrg()
    runner = JobRunner(org, attempts=2, retry_wait=0, max_upload_bytes=10**6)
    with pytest.raises(DuplicateRowKeys, match="as1_same"):
        runner.run(JobSpec("Task", "upsert", (EXT,), EXT), rows)
    assert org.jobs == []


# --- earlier attempts ------------------------------------------------------------------


def test_a_job_id_is_on_record_before_its_data_is_uploaded(tmp_path):
    ledger = LakeJobLedger(tmp_path / "jobs")
    org = FakeOrg(job_fates={0: "killed_before_upload"})
    with pytest.raises(WorkerKilled):
        load_plan(make_plan(), org, ledger=ledger)
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "jobs").glob("*.json")]
    assert record["finished"] is False
    assert [job["job_id"] for job in record["jobs"]] == ["750000000000000000"]


def test_a_retried_task_waits_for_its_earlier_job_instead_of_sending_the_rows_again(tmp_path):
    plan = make_plan(n_contacts=3, n_tasks=2)
    org = FakeOrg(job_fates={0: "killed_while_waiting"})
    with pytest.raises(WorkerKilled):
        load_plan(plan, org, ledger=LakeJobLedger(tmp_path))
    assert task_jobs(org) == [2]
    result = load_plan(plan, org, ledger=LakeJobLedger(tmp_path))
    assert task_jobs(org) == [2], "the Tasks were sent a second time"
    assert result.summary["earlier_jobs_settled"] == 1
    assert len(org.tasks) == 2 and len(org.relations) == 4
    # What else the dead attempt did is unknown: its Tasks' relations are read first.
    assert result.task_results["created"].eq(False).all()
    assert len(org.queries) == 1
    assert result.dead_letter.empty


def test_a_job_left_open_by_a_dead_task_is_never_processed_so_its_rows_are_sent_anew(tmp_path):
    org = FakeOrg(job_fates={0: "killed_before_upload"})
    with pytest.raises(WorkerKilled):
        load_plan(make_plan(n_tasks=2), org, ledger=LakeJobLedger(tmp_path))
    result = load_plan(make_plan(n_tasks=2), org, ledger=LakeJobLedger(tmp_path))
    assert len(org.bodies) == 3  # the Open job, its replacement, the relations
    assert org.bodies[0] == org.bodies[1]
    assert result.summary["earlier_jobs_settled"] == 0
    # The dead attempt's Open job is aborted, so nothing can close it later.
    assert len(org.aborted) == 1 and org.results[org.aborted[0]].state == "Aborted"
    assert len(org.tasks) == 2


def test_the_jobs_of_a_finished_load_are_not_reused_by_a_rerun(tmp_path):
    plan = make_plan(n_tasks=2)
    org = FakeOrg()
    load_plan(plan, org, ledger=LakeJobLedger(tmp_path))
    result = load_plan(plan, org, ledger=LakeJobLedger(tmp_path))
    assert task_jobs(org) == [2, 2]
    assert result.summary["earlier_jobs_settled"] == 0
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert [r["finished"] for r in records] == [True, True]


def test_an_unreadable_job_record_is_reported_and_skipped(tmp_path, caplog):
    (tmp_path / "20260101T000000-broken.json").write_text("{not json")
    result = load_plan(make_plan(), FakeOrg(), ledger=LakeJobLedger(tmp_path))
    assert result.summary["earlier_jobs_settled"] == 0
    assert "unreadable" in caplog.text


def test_the_in_memory_ledger_keeps_entries_but_finds_no_earlier_jobs():
    ledger = JobLedger()
    org = FakeOrg()
    load_plan(make_plan(n_tasks=2), org, ledger=ledger)
    assert [e.object_name for e in ledger.entries] == ["Task", "TaskRelation"]
    assert ledger.unfinished() == []
