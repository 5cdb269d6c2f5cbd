"""Loading Salesforce Events (R14) into the local Salesforce over HTTPS, exactly once (R11).

Plans here are built by hand from the seeded org's Contacts, so that every case (a crash
between steps, an invited Contact, a refused Event) is set up on purpose; the DAG tests
load the planner's own Events. Salesforce is queried back through the real client.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from event_plans import ORG, START, event_plan, seeded_people, with_frames
from salesforce_state import assert_salesforce_holds_exactly, salesforce_event_relations

from activity_sync import lake
from activity_sync.activity_kinds import SALESFORCE_EVENTS
from activity_sync.load import LoadOptions, load_plan, task_rows
from activity_sync.load_results import write_load_result
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import SALESFORCE_DATETIME_FORMAT, TASK_COLUMNS, task_key
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD as EXT


class CountingClient(SalesforceClient):
    """The real client, noting each SOQL statement it sends (to prove which reads happen)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.soql: list[str] = []

    def query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        self.soql.append(soql)
        return super().query(soql, include_deleted=include_deleted)

    def bulk_query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        self.soql.append(soql)
        return super().bulk_query(soql, include_deleted=include_deleted)


@pytest.fixture
def client(fresh_emulator) -> CountingClient:
    return CountingClient(fresh_emulator.simple_salesforce, poll_wait=0.05, backoff=0.05)


@pytest.fixture
def crm(client) -> dict:
    return seeded_people(client)


def _relation_reads(client: CountingClient) -> list[str]:
    return [q for q in client.soql if "FROM EventRelation" in q]


def test_r14_salesforce_events_and_their_relations_load_once_and_a_rerun_makes_nothing(client, crm):
    plan = event_plan(crm, [[0, 1, 2], [3], [4, 5]])
    first = load_plan(plan, client, LoadOptions(row_retry_wait=0))
    assert _relation_reads(client) == [], "a first load read relations it could not have"
    assert_salesforce_holds_exactly(client, [plan])
    summary = first.summary
    assert (summary["salesforce_events_created"], summary["event_relations_inserted"]) == (3, 3)
    assert summary["dead_letter"] == 0
    flags = client.query("SELECT IsParent, IsInvitee FROM EventRelation WHERE IsWhat = false")
    assert flags["IsParent"].all() and not flags["IsInvitee"].any()

    client.soql.clear()
    again = load_plan(plan, client, LoadOptions(row_retry_wait=0))
    assert len(_relation_reads(client)) == 1, "one read for the re-touched Events"
    assert_salesforce_holds_exactly(client, [plan])
    summary = again.summary
    assert summary["salesforce_events_created"] == 0
    assert summary["salesforce_events_updated"] == 3
    assert summary["event_relations_inserted"] == 0
    assert summary["event_relations_existing"] == 3


def test_r14_tasks_and_salesforce_events_of_one_plan_load_side_by_side(client, crm):
    events = event_plan(crm, [[0, 1]])
    who = crm["contacts"].iloc[2]
    key = task_key(ORG, "e1", "b0", who["AccountId"])
    tasks = pd.DataFrame(
        [
            {
                "task_key": key,
                "org_id": ORG,
                "event_id": "e1",
                "event_type": "sent",
                "WhoId": who["Id"],
                "WhatId": who["AccountId"],
                "OwnerId": crm["user"],
                "Subject": "Email: hello",
                "Description": "Hi",
                "ActivityDate": START.date().isoformat(),
                "Status": "Completed",
                "TaskSubtype": "Email",
                "who_count": 1,
                "batch_index": 0,
            }
        ],
        columns=TASK_COLUMNS,
    )
    relations = pd.DataFrame(
        [{"task_key": key, "RelationId": who["Id"], "position": 0, "is_primary": True}]
    )
    plan = with_frames(events, tasks=tasks, relations=relations)
    result = load_plan(plan, client, LoadOptions(row_retry_wait=0))
    assert_salesforce_holds_exactly(client, [plan])
    assert (result.summary["tasks_created"], result.summary["salesforce_events_created"]) == (1, 1)
    assert list(result.event_results["event_key"]) == list(events.salesforce_events["event_key"])


def test_r14_a_load_killed_after_creating_its_event_job_ends_exact_on_rerun(
    client, crm, fresh_emulator
):
    plan = event_plan(crm, [[0, 1, 2], [3, 4]])
    # What a worker killed between "job created + data uploaded" and "UploadComplete" leaves.
    bulk = fresh_emulator.simple_salesforce().bulk2.Event._client
    job = bulk.create_job("upsert", external_id_field=EXT, line_ending="CRLF")
    rows = task_rows(plan.salesforce_events, EXT, SALESFORCE_EVENTS)
    bulk.upload_job_data(job["id"], rows.to_csv(index=False, lineterminator="\r\n"))
    load_plan(plan, client, LoadOptions(row_retry_wait=0))
    assert_salesforce_holds_exactly(client, [plan])


def test_r14_a_load_killed_after_the_event_job_finished_ends_exact_on_rerun(client, crm):
    plan = event_plan(crm, [[0, 1, 2], [3, 4]])
    primaries = plan.event_relations[plan.event_relations["is_primary"]]
    load_plan(with_frames(plan, event_relations=primaries), client, LoadOptions(row_retry_wait=0))
    result = load_plan(plan, client, LoadOptions(row_retry_wait=0))
    assert_salesforce_holds_exactly(client, [plan])
    summary = result.summary
    assert summary["salesforce_events_created"] == 0
    assert summary["event_relations_inserted"] == summary["event_relations_planned"] == 3


def test_r14_a_load_killed_with_event_relations_half_inserted_ends_exact_on_rerun(client, crm):
    plan = event_plan(crm, [list(range(12))])
    extra = plan.event_relations[~plan.event_relations["is_primary"]]
    half = pd.concat(
        [plan.event_relations[plan.event_relations["is_primary"]], extra.iloc[: len(extra) // 2]]
    )
    load_plan(with_frames(plan, event_relations=half), client, LoadOptions(row_retry_wait=0))
    result = load_plan(plan, client, LoadOptions(row_retry_wait=0))
    assert_salesforce_holds_exactly(client, [plan])
    assert result.summary["event_relations_existing"] == len(extra) // 2
    assert result.summary["event_relations_inserted"] == len(extra) - len(extra) // 2


def test_r14_a_contact_someone_invited_is_made_to_relate_not_added_again(client, crm):
    """One EventRelation row per person ("If a contact or lead is also an invitee, there is
    one EventRelation record for that person with IsInvitee and IsParent [...] true":
    https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-eventrelation.html)."""
    plan = event_plan(crm, [[0, 1, 2]])
    missing = plan.event_relations["position"].eq(2)
    load_plan(with_frames(plan, event_relations=plan.event_relations[~missing]), client)
    event = client.query(f"SELECT Id FROM Event WHERE {EXT} != null")["Id"].iloc[0]
    invitee = plan.event_relations.loc[missing, "RelationId"].iloc[0]
    client.sf.EventRelation.create({"EventId": event, "RelationId": invitee})
    result = load_plan(plan, client, LoadOptions(row_retry_wait=0))
    assert_salesforce_holds_exactly(client, [plan])
    assert result.summary["event_relations_related"] == 1
    row = client.query(
        f"SELECT IsParent, IsInvitee FROM EventRelation WHERE RelationId = '{invitee}'"
    )
    assert (bool(row["IsParent"].iloc[0]), bool(row["IsInvitee"].iloc[0])) == (True, True)


def test_r14_refused_events_and_their_relations_are_dead_lettered_with_their_keys(
    client, crm, tmp_path
):
    plan = event_plan(crm, [[0, 1], [2]])
    # A Lead's Event takes no WhatId: Salesforce refuses the row for good.
    bad = plan.salesforce_events.index[0]
    events = plan.salesforce_events.copy()
    events.loc[bad, "WhoId"] = crm["lead"]
    plan = with_frames(plan, salesforce_events=events)
    result = load_plan(plan, client, LoadOptions(row_retry_wait=0))
    dead = result.dead_letter
    key = events.loc[bad, "event_key"]
    # The Event, and its two people, which could not be related (never sent).
    assert dead[["object", "event_key", "error_code"]].values.tolist() == [
        ["Event", key, "FIELD_INTEGRITY_EXCEPTION"],
        ["EventRelation", key, "SALESFORCE_EVENT_FAILED"],
        ["EventRelation", key, "SALESFORCE_EVENT_FAILED"],
    ]
    assert dead["error_message"].iloc[1].startswith("its Event was not loaded: FIELD_INTEGRITY")
    assert dead["task_key"].isna().all()
    statuses = result.event_relation_results.set_index("RelationId")["status"]
    assert set(statuses[result.event_relation_results["event_key"].eq(key).to_numpy()]) == {
        "salesforce_event_failed"
    }
    assert result.summary["salesforce_events_failed"] == 1
    write_load_result(result, tmp_path)
    assert pd.read_parquet(tmp_path / lake.DEAD_LETTER)["event_key"].tolist() == [key] * 3
    assert len(pd.read_parquet(tmp_path / lake.EVENT_RESULTS)) == 2


def test_r14_a_replanned_event_is_updated_in_place_with_its_subtype_untouched(client, crm):
    plan = event_plan(crm, [[0, 1]])
    load_plan(plan, client, LoadOptions(row_retry_wait=0))
    moved = plan.salesforce_events.copy()
    later = START + timedelta(hours=5)
    moved["StartDateTime"] = later.strftime(SALESFORCE_DATETIME_FORMAT)
    moved["EndDateTime"] = (later + timedelta(minutes=30)).strftime(SALESFORCE_DATETIME_FORMAT)
    moved["Location"] = None
    result = load_plan(
        with_frames(plan, salesforce_events=moved), client, LoadOptions(row_retry_wait=0)
    )
    assert result.summary["salesforce_events_updated"] == 1
    assert result.summary["dead_letter"] == 0
    held = client.query(
        f"SELECT StartDateTime, Location, EventSubtype FROM Event WHERE {EXT} != null"
    )
    assert held["StartDateTime"].iloc[0].startswith(later.strftime("%Y-%m-%dT%H:%M"))
    assert pd.isna(held["Location"].iloc[0]) and held["EventSubtype"].iloc[0] == "Event"
    assert len(salesforce_event_relations(client)) == 2


def test_r14_an_all_day_event_loads_with_its_day_and_length(client, crm):
    plan = event_plan(crm, [[0]], all_day=True)
    load_plan(plan, client, LoadOptions(row_retry_wait=0))
    held = client.query(
        f"SELECT IsAllDayEvent, ActivityDate, DurationInMinutes FROM Event WHERE {EXT} != null"
    )
    assert bool(held["IsAllDayEvent"].iloc[0]) is True
    assert held["ActivityDate"].iloc[0] == plan.salesforce_events["ActivityDate"].iloc[0]
    assert held["DurationInMinutes"].iloc[0] == 1440


def test_r14_an_invitee_row_deleted_between_the_reads_is_inserted_instead(fresh_emulator, crm):
    """The invitee row found by the relation read is gone when the loader comes to update
    it (someone removed the invitation meanwhile): the person is inserted as a relation."""

    class RemovingInvitation(CountingClient):
        def query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
            if "IsParent = false" in soql:
                invitees = super().query(
                    "SELECT Id FROM EventRelation WHERE IsParent = false AND IsWhat = false"
                )
                for row in invitees["Id"]:
                    self.sf.EventRelation.delete(row)
            return super().query(soql, include_deleted=include_deleted)

    client = RemovingInvitation(fresh_emulator.simple_salesforce, poll_wait=0.05, backoff=0.05)
    plan = event_plan(crm, [[0, 1, 2]])
    missing = plan.event_relations["position"].eq(2)
    load_plan(with_frames(plan, event_relations=plan.event_relations[~missing]), client)
    event = client.query(f"SELECT Id FROM Event WHERE {EXT} != null")["Id"].iloc[0]
    invitee = plan.event_relations.loc[missing, "RelationId"].iloc[0]
    client.sf.EventRelation.create({"EventId": event, "RelationId": invitee})
    result = load_plan(plan, client, LoadOptions(row_retry_wait=0))
    assert_salesforce_holds_exactly(client, [plan])
    assert result.summary["event_relations_inserted"] == 1
    assert result.summary["event_relations_related"] == 0
