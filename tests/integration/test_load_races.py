"""Exactly once when loads race, jobs fail, and load tasks die, against the local Salesforce.

Real simple-salesforce over HTTPS, the emulator with its defaults: Bulk jobs run two at a
time in 200-row transactions, and the external key is Unique, so two jobs writing one key
race as they do in Salesforce.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from dataclasses import asdict

import pandas as pd
import pytest
from load_worker import EXT, held_everywhere, load_in_process, quick, synthetic_plan
from salesforce_state import assert_salesforce_holds_exactly

from activity_sync.bulk import JobKind
from activity_sync.job_ledger import LakeJobLedger
from activity_sync.load import load_plan
from activity_sync.plan import write_plan
from activity_sync.salesforce import SalesforceClient


@pytest.fixture
def client(fresh_emulator) -> SalesforceClient:
    return SalesforceClient(
        fresh_emulator.simple_salesforce, poll_wait=0.02, backoff=0.01, max_attempts=8
    )


@pytest.fixture
def contacts(client) -> pd.DataFrame:
    return client.query("SELECT Id, AccountId FROM Contact")


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
    # Each chunk reads its keys, then writes; the two Task jobs start their chunks together
    # however late the second process uploads on a busy machine.
    fresh_emulator.set_faults(chunk_seconds=0.05, start_together=2)
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
    for summary, dead, _ in results:
        assert dead == []
        assert summary["tasks_planned"] == 5_000
    assert sum(raced for _, _, raced in results) > 0, "the two loads never raced"
    # Chunks of both loads name the same Contacts and Accounts: the record locks held them
    # off each other (docs/salesforce-fidelity.md, "Lock contention").
    assert fresh_emulator.stats()["jobs"]["locks"]["waits"] > 0, "no chunk waited for a lock"
    assert_salesforce_holds_exactly(client, [plan])


@pytest.mark.parametrize("row_attempts", [1, 4])
def test_with_a_tenth_of_jobs_failing_every_planned_row_is_in_salesforce_or_dead_lettered(
    fresh_emulator, client, contacts, row_attempts
):
    """A job can end Failed part way; the rows it did not process are in its unprocessed
    results ("Get Job Unprocessed Record Results":
    https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_unprocessed_results.htm).
    With one attempt they are dead-lettered with a code; with four they are sent again."""
    fresh_emulator.set_faults(seed=3, failed_job_rate=0.1)
    plan = synthetic_plan(contacts, 1_000, seed=9, description="e" * 300)
    result = load_plan(plan, client, quick(row_attempts=row_attempts, max_upload_bytes=20_000))
    injected = fresh_emulator.stats()["faults"]["injected"].get("failed_job", 0)
    fresh_emulator.set_faults()
    assert injected > 0, "no job was made to fail"
    tasks, relations = held_everywhere(client)
    dead = result.dead_letter
    dead_tasks = dead.loc[dead["object"] == "Task", "task_key"]
    assert dead["error_code"].notna().all() and dead["error_code"].ne("").all()
    assert len(tasks) + len(dead_tasks) == len(plan.tasks) == 1_000
    assert set(tasks[EXT]) | set(dead_tasks) == set(plan.tasks["task_key"])
    held = relations.merge(tasks, left_on="TaskId", right_on="Id")
    dead_relations = dead[dead["object"] == "TaskRelation"]
    assert len(held) + len(dead_relations) == len(plan.relations)
    if row_attempts == 1:
        assert len(dead_tasks) > 0
        assert set(dead["error_code"]) <= {"UNPROCESSED", "NO_RESULT", "TASK_FAILED"}
    else:
        assert dead.empty
        assert_salesforce_holds_exactly(client, [plan])


def test_r11_a_load_killed_while_its_job_runs_is_finished_by_the_retry_without_a_second_job(
    fresh_emulator, client, contacts, tmp_path
):
    """The killed task recorded its job in the lake before uploading; the retry waits for
    that job and takes its results, so the Tasks are never in two jobs at once."""
    plan = synthetic_plan(contacts, 500, seed=8)
    write_plan(plan, tmp_path / "plan")
    fresh_emulator.set_faults(slow_bulk_seconds=3)
    spawn = multiprocessing.get_context("spawn")
    barrier, out = spawn.Barrier(1), spawn.Queue()
    worker = spawn.Process(
        target=load_in_process,
        args=(
            asdict(fresh_emulator.info),
            str(tmp_path / "plan"),
            str(tmp_path / "jobs"),
            barrier,
            out,
        ),
    )
    worker.start()
    deadline = time.monotonic() + 60
    while not any(p.read_text().count("job_id") for p in (tmp_path / "jobs").glob("*.json")):
        assert time.monotonic() < deadline, "the worker never recorded its job"
        time.sleep(0.05)
    time.sleep(0.3)  # past the upload: the job is closed and running
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(timeout=30)
    fresh_emulator.set_faults()

    result = load_plan(plan, client, quick(), LakeJobLedger(tmp_path / "jobs"))
    assert result.summary["earlier_jobs_settled"] == 1
    assert result.dead_letter.empty
    sf = fresh_emulator.simple_salesforce()
    jobs = sf.session.get(f"{sf.bulk2_url}{JobKind.INGEST}", headers=sf.headers).json()
    assert [job["object"] for job in jobs["records"]].count("Task") == 1
    assert_salesforce_holds_exactly(client, [plan])
