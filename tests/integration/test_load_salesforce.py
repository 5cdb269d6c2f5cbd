"""The loader's exactly-once claims against the local Salesforce, over real HTTPS.

Real simple-salesforce, real Bulk API 2.0 jobs, the emulator with its defaults. Each test
states the Salesforce behaviour it leans on and where Salesforce documents it.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest
from load_worker import held_everywhere, quick, synthetic_plan
from salesforce_state import assert_salesforce_holds_exactly, salesforce_tasks
from simple_salesforce import Salesforce
from strategies import events_of, settings_of

from activity_sync.bulk import BULK_NULL, BulkUploadFailed, JobKind, JobState, csv_body
from activity_sync.crm import read_crm
from activity_sync.job_ledger import LakeJobLedger
from activity_sync.load import load_plan, task_rows
from activity_sync.mirror import refresh_crm
from activity_sync.plan import plan as plan_events
from activity_sync.reconcile import OK, reconcile
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


def test_a_load_over_the_upload_limit_is_split_into_jobs_that_each_load(
    fresh_emulator, client, contacts
):
    """Salesforce takes at most 150 MB, base64-encoded, per job upload ("Upload Job Data":
    https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/upload_job_data.htm);
    here the limit is lowered so that a small plan needs several jobs. 60,000 bytes of CSV
    are 80,000 once base64-encoded."""
    fresh_emulator.set_settings(upload_limit_bytes=80_000)
    plan = synthetic_plan(contacts, 600, seed=4, description="d" * 400)
    result = load_plan(plan, client, quick(max_upload_bytes=60_000))
    assert result.summary["bulk_jobs"] >= 5
    assert result.dead_letter.empty
    assert_salesforce_holds_exactly(client, [plan])


def test_an_upload_salesforce_refuses_as_too_large_fails_the_load_naming_the_job(
    fresh_emulator, client, contacts
):
    fresh_emulator.set_settings(upload_limit_bytes=80_000)
    plan = synthetic_plan(contacts, 600, seed=4, description="d" * 400)
    with pytest.raises(BulkUploadFailed, match="Exceeded max size limit") as refused:
        load_plan(plan, client, quick(max_upload_bytes=200_000))
    sf = fresh_emulator.simple_salesforce()
    job = sf.session.get(
        f"{sf.bulk2_url}{JobKind.INGEST}/{refused.value.job_id}", headers=sf.headers
    ).json()
    assert job["state"] == JobState.ABORTED


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


def test_r11_a_backfill_of_a_400_day_old_hour_run_twice_holds_each_task_once_and_reconciles(
    fresh_emulator, client, contacts
):
    """Salesforce archives closed Tasks whose ActivityDate is 365 days old; query() leaves
    them out, queryAll() returns them ("Archived Activities":
    https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_guidelines_archive.htm).
    An upsert matching an archived Task is not documented; the emulator answers
    DUPLICATE_VALUE naming it, the harsher reading, and the loader updates it by Id."""
    old_day = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=400)).strftime("%Y-%m-%d")
    plan = synthetic_plan(contacts, 200, seed=7, activity_date=old_day)
    results = [load_plan(plan, client, quick()) for _ in range(2)]
    tasks, relations = held_everywhere(client)
    assert tasks["IsArchived"].astype(str).str.lower().eq("true").all(), "nothing was archived"
    assert client.query(f"SELECT Id FROM Task WHERE {EXT} != null").empty
    assert sorted(tasks[EXT]) == sorted(plan.tasks["task_key"])
    held = relations.merge(tasks, left_on="TaskId", right_on="Id")
    assert not held.duplicated(["TaskId", "RelationId"]).any()
    assert set(zip(held[EXT], held["RelationId"], strict=True)) == set(
        zip(plan.relations["task_key"], plan.relations["RelationId"], strict=True)
    )
    second = results[1]
    assert second.dead_letter.empty
    assert second.summary["tasks_created"] == 0
    assert second.summary["relations_inserted"] == 0
    assert second.task_results["attempts"].eq(2).all(), "the update by Id was not needed"
    reconciliation = reconcile(
        client,
        plan.tasks,
        plan.relations,
        second.task_results,
        second.relation_results,
        known_keys=lambda: set(plan.tasks["task_key"]),
    )
    assert reconciliation["status"] == OK, reconciliation["summary"]
    assert reconciliation["tasks_found"] == 200


def test_subjects_and_bodies_of_emoji_cut_by_the_planner_at_the_limit_load_as_planned(
    client, tmp_path
):
    """Salesforce counts a Subject's 255 and a Description's 32,000 in UTF-16 code units,
    an emoji being two (Task: https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_task.htm);
    what the planner cuts loads whole, with no STRING_TOO_LONG."""
    refresh_crm(client, tmp_path / "crm")
    crm = read_crm(tmp_path / "crm")
    people = crm.contacts["Email"].dropna().head(3).tolist()
    events = events_of(
        [
            {
                "event_id": f"emoji-{i}",
                "org_id": "acme",
                "type": "sent",
                "occurred_at": "2026-11-26T10:00:00Z",
                "sender": "rep@acme-sales.example.com",
                "recipients": [{"email": person, "field": "to"}],
                "subject": prefix + "😀" * 200,
                "body": prefix + "🎉" * 20_000,
            }
            for i, (person, prefix) in enumerate(zip(people, ["", "a", "ab"], strict=True))
        ]
    )
    planned = plan_events(events, crm, settings_of(org_id="acme"))
    units = planned.tasks["Subject"].map(lambda s: len(s.encode("utf-16-le")) // 2)
    assert units.isin([254, 255]).all() and len(planned.tasks) == 3
    result = load_plan(planned, client, quick())
    assert result.dead_letter.empty
    held = client.query(f"SELECT {EXT}, Subject, Description FROM Task").set_index(EXT)
    expected = planned.tasks.set_index("task_key")
    assert held["Subject"].to_dict() == expected["Subject"].astype(str).to_dict()
    assert held["Description"].to_dict() == expected["Description"].astype(str).to_dict()


def test_a_session_expired_mid_load_recovers_with_one_new_login(fresh_emulator, contacts):
    """An expired session stays expired until the client logs in again (INVALID_SESSION_ID:
    "you must invoke the login() call again",
    https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_concepts_errorhandling.htm)."""
    host = fresh_emulator.info.instance_url.removeprefix("https://")

    def connect() -> Salesforce:
        return Salesforce(
            consumer_key=fresh_emulator.info.client_id,
            consumer_secret=fresh_emulator.info.client_secret,
            domain=f"{host}/services/oauth2/token#",
            session=fresh_emulator.session(),
            version=fresh_emulator.info.api_version,
        )

    expired = []

    def sleep(seconds: float) -> None:
        if not expired:  # while the first Bulk job runs
            expired.append(fresh_emulator.expire_sessions())
        time.sleep(seconds)

    client = SalesforceClient(connect, poll_wait=0.02, backoff=0.01, sleep=sleep)
    logins_before = fresh_emulator.stats()["auth"]["logins"]
    plan = synthetic_plan(contacts, 300, seed=10)
    result = load_plan(plan, client, quick())
    assert expired and expired[0] >= 1
    assert client.calls["login"] == 1
    assert fresh_emulator.stats()["auth"]["logins"] - logins_before == 1
    assert result.dead_letter.empty
    assert_salesforce_holds_exactly(client, [plan])


def test_issue_12_an_internationalised_contact_is_related_by_an_address_written_in_idna_capitals(
    fresh_emulator, client, tmp_path
):
    """Email Address Internationalization: Salesforce stores `zoë@exämple.com` in Unicode
    (https://help.salesforce.com/s/articleView?id=sales.emailadmin_eai.htm,
    https://help.salesforce.com/s/articleView?id=sales.emailadmin_eai_prepare.htm); a mail
    system may write the same address in capitals with its domain in IDNA form. The planner
    matches one to the other and the loader relates that Contact."""
    sf = fresh_emulator.simple_salesforce()
    account = sf.Account.create({"Name": "Exämple GmbH"})["id"]
    zoe = sf.Contact.create({"LastName": "Zoë", "Email": "zoë@exämple.com", "AccountId": account})
    ana = sf.Contact.create({"LastName": "Ana", "Email": "ana@exämple.com", "AccountId": account})
    refresh_crm(client, tmp_path / "crm")
    crm = read_crm(tmp_path / "crm")
    events = events_of(
        [
            {
                "event_id": "eai-1",
                "org_id": "acme",
                "type": "sent",
                "occurred_at": "2026-11-26T10:00:00Z",
                "sender": "rep@acme-sales.example.com",
                "recipients": [
                    {"email": "ZOË@XN--EXMPLE-CUA.COM", "field": "to"},
                    {"email": "Ana@Exämple.com", "field": "cc"},
                ],
                "subject": "Angebot",
                "body": None,
            }
        ]
    )
    planned = plan_events(events, crm, settings_of(org_id="acme"))
    assert planned.rejected.empty, planned.rejected.to_dict("records")
    assert planned.tasks["WhoId"].tolist() == [zoe["id"]]
    assert set(planned.relations["RelationId"]) == {zoe["id"], ana["id"]}
    result = load_plan(planned, client, quick())
    assert result.dead_letter.empty
    assert_salesforce_holds_exactly(client, [planned])
    task = client.query(
        f"SELECT Id, WhoId FROM Task WHERE {EXT} = '{planned.tasks['task_key'][0]}'"
    )
    assert task["WhoId"].tolist() == [zoe["id"]]
    related = client.query(f"SELECT RelationId FROM TaskRelation WHERE TaskId = '{task['Id'][0]}'")
    assert {zoe["id"], ana["id"]} <= set(related["RelationId"])
