"""The loader's exactly-once claims against the local Salesforce, over real HTTPS.

Real simple-salesforce, real Bulk API 2.0 jobs, the emulator with its defaults. Each test
states the Salesforce behaviour it leans on and where Salesforce documents it.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import asdict

import pandas as pd
import pytest
from load_worker import load_in_process, synthetic_plan
from salesforce_state import assert_salesforce_holds_exactly, salesforce_tasks

from activity_sync.bulk import BULK_NULL, JobKind, JobState, csv_body
from activity_sync.job_ledger import LakeJobLedger
from activity_sync.load import LoadOptions, load_plan, task_rows
from activity_sync.plan import write_plan
from activity_sync.salesforce import SalesforceClient
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD as EXT


@pytest.fixture
def client(fresh_emulator) -> SalesforceClient:
    return SalesforceClient(
        fresh_emulator.simple_salesforce, poll_wait=0.02, backoff=0.01, max_attempts=8
    )


@pytest.fixture
def contacts(client) -> pd.DataFrame:
    return client.query("SELECT Id, AccountId FROM Contact")


def quick(**overrides) -> LoadOptions:
    return LoadOptions(row_retry_wait=0.05, **overrides)


def test_r11_two_loads_of_one_plan_started_together_in_two_processes_hold_everything_once(
    fresh_emulator, client, contacts, tmp_path
):
    """Two runs of one hour (a retry racing a backfill) upsert the same keys at once. On a
    Unique external ID the loser gets DUPLICATE_VALUE, which the loader upserts again; a
    relation inserted twice is DUPLICATE_VALUE too, counted as existing. Nothing is lost,
    nothing doubled, nothing dead-lettered.

    Unique external IDs and upsert: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/walkthrough_upsert.htm
    """
    plan = synthetic_plan(contacts, 5_000, seed=1)
    write_plan(plan, tmp_path / "plan")
    spawn = multiprocessing.get_context("spawn")
    barrier, out = spawn.Barrier(2), spawn.Queue()
    workers = [
        spawn.Process(
            target=load_in_process,
            args=(
                asdict(fresh_emulator.info),
                str(tmp_path / "plan"),
                str(tmp_path / "jobs"),
                barrier,
                out,
            ),
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    for summary, dead in results:
        assert dead == []
        assert summary["tasks_planned"] == 5_000
    assert_salesforce_holds_exactly(client, [plan])


def test_a_job_given_up_after_the_job_timeout_is_aborted_and_its_rows_sent_again(
    fresh_emulator, contacts
):
    """Bulk API 2.0 "Abort a Job": processed rows stay, the rest are not processed
    (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/abort_job.htm)."""
    plan = synthetic_plan(contacts, 300, seed=2)
    fresh_emulator.set_faults(slow_bulk_seconds=1.5)
    waited = []

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        waited.append(seconds)
        if sum(waited) > 1.0:  # the first job was given up: now Salesforce recovers
            fresh_emulator.set_faults()

    client = SalesforceClient(
        fresh_emulator.simple_salesforce, poll_wait=0.1, job_timeout=1.0, sleep=sleep
    )
    result = load_plan(plan, client, quick())
    assert result.dead_letter.empty
    assert_salesforce_holds_exactly(client, [plan])
    sf = fresh_emulator.simple_salesforce()
    jobs = sf.session.get(f"{sf.bulk2_url}{JobKind.INGEST}", headers=sf.headers).json()
    states = [job["state"] for job in jobs["records"] if job["object"] == "Task"]
    assert JobState.ABORTED in states


def test_issue_12_a_text_that_is_exactly_the_bulk_null_marker_arrives_as_that_text(
    client, contacts
):
    """In a Bulk CSV, #N/A sets a field to null, with no documented escape ("Valid CSV
    Record Rows": https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_csv_valid_record_rows.htm);
    such rows go through sObject Collections, whose JSON tells text from null."""
    plan = synthetic_plan(contacts, 4, seed=3)
    plan.tasks.loc[0, "Description"] = BULK_NULL
    plan.tasks.loc[1, "Subject"] = BULK_NULL
    plan.tasks.loc[2, "Description"] = ""
    for _ in range(2):  # created, then updated
        result = load_plan(plan, client, quick())
        assert result.dead_letter.empty
        held = client.query(f"SELECT {EXT}, Subject, Description FROM Task").set_index(EXT)
        keys = plan.tasks["task_key"]
        assert held.loc[keys[0], "Description"] == BULK_NULL
        assert held.loc[keys[1], "Subject"] == BULK_NULL
        assert pd.isna(held.loc[keys[2], "Description"])
        assert held.loc[keys[3], "Description"] == plan.tasks.loc[3, "Description"]
    assert_salesforce_holds_exactly(client, [plan])


def test_a_load_over_the_upload_limit_is_split_into_jobs_that_each_load(client, contacts):
    """Salesforce takes at most 150 MB (base64) per job upload ("Bulk API 2.0 Limits":
    https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_bulkapi.htm);
    here the limit is lowered so a small plan needs several jobs."""
    plan = synthetic_plan(contacts, 600, seed=4, description="d" * 400)
    result = load_plan(plan, client, quick(max_upload_bytes=60_000))
    assert result.summary["bulk_jobs"] >= 5
    assert result.dead_letter.empty
    assert_salesforce_holds_exactly(client, [plan])


def test_the_job_record_names_every_job_and_ends_finished(client, contacts, tmp_path):
    plan = synthetic_plan(contacts, 50, seed=5)
    ledger = LakeJobLedger(tmp_path)
    result = load_plan(plan, client, quick(), ledger)
    assert [e.object_name for e in ledger.entries] == ["Task", "TaskRelation"]
    assert ledger.finished and ledger.unfinished() == []
    assert len(ledger.entries) == result.summary["bulk_jobs"]
    tasks = salesforce_tasks(client)
    assert len(tasks) == 50


@pytest.mark.slow
def test_a_plan_whose_csv_is_over_120_mb_loads_in_at_least_two_jobs(client, contacts):
    """At the real limit: 100 MB of CSV per job (150 MB once base64-encoded, "Prepare CSV
    Files": https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_prepare_csv.htm)."""
    plan = synthetic_plan(contacts, 4_200, seed=6, description="body text, " * 2_900)
    assert len(csv_body(task_rows(plan.tasks, EXT))) > 120_000_000
    started = time.monotonic()
    result = load_plan(plan, client, quick())
    task_jobs = result.summary["bulk_jobs"] - 1  # one relation job
    print(f"120 MB load: {task_jobs} Task jobs, {time.monotonic() - started:.0f} s")
    assert task_jobs >= 2
    assert result.dead_letter.empty
    assert_salesforce_holds_exactly(client, [plan])
