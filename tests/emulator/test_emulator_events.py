"""Event and EventRelation in the local Salesforce, as Salesforce documents them.

Each test names the page it imitates:

- Event: https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-event.html
- EventRelation: https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-eventrelation.html
  and its field details (IsInvitee, IsParent defaults, updateable flags):
  http://www.salesforce.com/us/developer/docs/api/Content/sforce_api_objects_eventattendee.htm
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

EVENT_PAGE = (
    "https://developer.salesforce.com/docs/platform/object-reference/references/"
    "standard-objects/object-event.html"
)
RELATION_PAGE = (
    "https://developer.salesforce.com/docs/platform/object-reference/references/"
    "standard-objects/object-eventrelation.html"
)
RELATION_FIELDS_PAGE = (
    "http://www.salesforce.com/us/developer/docs/api/Content/sforce_api_objects_eventattendee.htm"
)
# Recent dates: Salesforce archives activities a year old, and query leaves them out.
DAY = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
NEXT_DAY = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()


def _error(call) -> dict:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        call()
    return caught.value.content[0]


def _meeting(**fields) -> dict:
    return {
        "Subject": "Meeting",
        "StartDateTime": f"{DAY}T10:00:00Z",
        "EndDateTime": f"{DAY}T11:00:00Z",
        **fields,
    }


def _rows(sf, event: str) -> dict[str, dict]:
    soql = (
        "SELECT Id, RelationId, IsWhat, IsParent, IsInvitee, Status FROM EventRelation "
        f"WHERE EventId = '{event}'"
    )
    return {r["RelationId"]: r for r in sf.query_all(soql)["records"]}


def _bulk_errors(sf, obj: str, result) -> list[str]:
    text = getattr(sf.bulk2, obj).get_failed_records(result[0]["job_id"])
    return [row["sf__Error"] for row in csv.DictReader(io.StringIO(text))]


@pytest.fixture
def people(sf):
    """An Account with three Contacts and an Opportunity, a Lead, and a User."""
    account = sf.Account.create({"Name": "Meetings Inc"})["id"]
    records = [
        *(
            {"attributes": {"type": "Contact"}, "LastName": f"C{i}", "AccountId": account}
            for i in range(3)
        ),
        {"attributes": {"type": "Lead"}, "LastName": "L", "Company": "Leads Ltd"},
        {
            "attributes": {"type": "Opportunity"},
            "Name": "Deal",
            "AccountId": account,
            "StageName": "Prospecting",
            "CloseDate": DAY,
        },
    ]
    ids = [
        r["id"] for r in sf.restful("composite/sobjects", method="POST", json={"records": records})
    ]
    user = sf.query("SELECT Id FROM User WHERE IsActive = true LIMIT 1")["records"][0]["Id"]
    return {
        "account": account,
        "contacts": ids[:3],
        "lead": ids[3],
        "opportunity": ids[4],
        "user": user,
    }


# ------------------------------------------------------------------ relating and inviting


def test_an_event_relates_its_who_and_what_by_parent_rows_made_automatically(sf, people):
    """RELATION_PAGE: "Related contacts or lead (IsParent is set to true)"; the WhoId and
    WhatId of a new Event are related without a row from the client."""
    c0, opp = people["contacts"][0], people["opportunity"]
    event = sf.Event.create(_meeting(WhoId=c0, WhatId=opp))["id"]
    rows = _rows(sf, event)
    assert {k: (r["IsParent"], r["IsInvitee"], r["IsWhat"]) for k, r in rows.items()} == {
        c0: (True, False, False),
        opp: (True, False, True),
    }
    record = sf.Event.get(event)
    assert (record["WhoCount"], record["WhatCount"]) == (1, 1)
    assert record["AccountId"] == people["account"]


def test_a_relation_row_without_flags_invites_and_does_not_relate(sf, people):
    """RELATION_FIELDS_PAGE: "IsInvitee defaults to true [...] if IsInvitee, IsParent, and
    IsWhat are not set"; an invitee is not one of the Event's related people."""
    c0, c1 = people["contacts"][:2]
    event = sf.Event.create(_meeting(WhoId=c0))["id"]
    sf.EventRelation.create({"EventId": event, "RelationId": c1})
    row = _rows(sf, event)[c1]
    assert (row["IsParent"], row["IsInvitee"], row["Status"]) == (False, True, "New")
    assert sf.Event.get(event)["WhoCount"] == 1


def test_is_parent_relates_a_contact_and_defaults_is_invitee_to_false(sf, people):
    """RELATION_FIELDS_PAGE: "IsInvitee defaults to false [...] if IsParent is set to true"."""
    c0, c1 = people["contacts"][:2]
    event = sf.Event.create(_meeting(WhoId=c0, WhatId=people["opportunity"]))["id"]
    sf.EventRelation.create({"EventId": event, "RelationId": c1, "IsParent": True})
    row = _rows(sf, event)[c1]
    assert (row["IsParent"], row["IsInvitee"]) == (True, False)
    assert sf.Event.get(event)["WhoCount"] == 2


def test_fifty_contacts_relate_to_one_event_and_invitees_do_not_count(sf, people):
    """RELATION_PAGE: "An event can be related to up to 50 contacts or one lead. [...] The
    number of allowed invitees is not affected by the number of related contacts"."""
    contacts = [r["Id"] for r in sf.query("SELECT Id FROM Contact LIMIT 60")["records"]]
    event = sf.Event.create(_meeting(WhoId=contacts[0]))["id"]
    result = sf.bulk2.EventRelation.insert(
        records=[{"EventId": event, "RelationId": c, "IsParent": "true"} for c in contacts[1:55]]
        + [{"EventId": event, "RelationId": c} for c in contacts[55:]],
        wait=0.05,
    )
    assert result[0]["numberRecordsFailed"] == 5
    errors = _bulk_errors(sf, "EventRelation", result)
    assert all(e.startswith("FIELD_INTEGRITY_EXCEPTION:") and "at most 50" in e for e in errors)
    assert sf.Event.get(event)["WhoCount"] == 50
    invited = [r for r in _rows(sf, event).values() if r["IsInvitee"]]
    assert len(invited) == 5


def test_a_lead_event_relates_no_contact_but_may_invite_one(sf, people):
    """RELATION_PAGE: "one lead"; Help: "If a task or event is related to a lead, you can't
    relate the activity to additional contacts"; invitees are not affected."""
    event = sf.Event.create(_meeting(WhoId=people["lead"]))["id"]
    c0 = people["contacts"][0]
    error = _error(
        lambda: sf.EventRelation.create({"EventId": event, "RelationId": c0, "IsParent": True})
    )
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION" and error["fields"] == ["RelationId"]
    sf.EventRelation.create({"EventId": event, "RelationId": c0})
    assert sf.Event.get(event)["WhoCount"] == 1
    error = _error(lambda: sf.Event.update(event, {"WhatId": people["account"]}))
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION" and error["fields"] == ["WhatId"]


def test_a_contact_event_relates_no_lead(sf, people):
    """RELATION_PAGE: up to 50 contacts *or* one lead."""
    event = sf.Event.create(_meeting(WhoId=people["contacts"][0]))["id"]
    error = _error(
        lambda: sf.EventRelation.create(
            {"EventId": event, "RelationId": people["lead"], "IsParent": True}
        )
    )
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_a_person_has_one_row_per_event_and_an_invitee_is_made_to_relate_by_update(sf, people):
    """RELATION_PAGE: "If a contact or lead is also an invitee, there is one EventRelation
    record for that person with IsInvitee and IsParent [...] set to true"; IsParent has
    the Update property (RELATION_FIELDS_PAGE)."""
    c0, c1 = people["contacts"][:2]
    event = sf.Event.create(_meeting(WhoId=c0))["id"]
    error = _error(lambda: sf.EventRelation.create({"EventId": event, "RelationId": c0}))
    assert error["errorCode"] == "DUPLICATE_VALUE"
    sf.EventRelation.create({"EventId": event, "RelationId": c1})
    sf.EventRelation.update(_rows(sf, event)[c1]["Id"], {"IsParent": True})
    row = _rows(sf, event)[c1]
    assert (row["IsParent"], row["IsInvitee"]) == (True, True)
    assert sf.Event.get(event)["WhoCount"] == 2


def test_a_relation_keeps_its_event_and_person_but_an_invitee_may_answer(sf, people):
    """RELATION_PAGE: EventId and RelationId: "This value can't be changed after it's been
    specified"; the object exists to "manage invitees' responses to invitations"."""
    c0, c1, c2 = people["contacts"]
    event = sf.Event.create(_meeting(WhoId=c0))["id"]
    sf.EventRelation.create({"EventId": event, "RelationId": c1})
    row = _rows(sf, event)[c1]["Id"]
    error = _error(lambda: sf.EventRelation.update(row, {"RelationId": c2}))
    assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    error = _error(lambda: sf.EventRelation.update(row, {"IsWhat": True}))
    assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    sf.EventRelation.update(row, {"Status": "Accepted", "Response": "See you there"})
    assert _rows(sf, event)[c1]["Status"] == "Accepted"


def test_the_primary_that_stops_relating_gives_way_and_a_row_must_relate_or_invite(sf, people):
    """RELATION_PAGE: deleting the row of the WhoId promotes another Who; a row that would
    neither relate nor invite is refused (undocumented: the harsher choice)."""
    c0, c1 = people["contacts"][:2]
    event = sf.Event.create(_meeting(WhoId=c0))["id"]
    sf.EventRelation.create({"EventId": event, "RelationId": c1, "IsParent": True})
    primary = _rows(sf, event)[c0]["Id"]
    error = _error(lambda: sf.EventRelation.update(primary, {"IsParent": False}))
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    sf.EventRelation.update(primary, {"IsParent": False, "IsInvitee": True})
    record = sf.Event.get(event)
    assert (record["WhoId"], record["WhoCount"]) == (c1, 1)
    assert _rows(sf, event)[c0]["IsInvitee"] is True


def test_a_user_is_invited_and_never_related(sf, people):
    """RELATION_PAGE: "Represents a person (a user, lead, or contact) [...] invited"; only
    Contacts and Leads are related people (a User as parent: the harsher choice)."""
    event = sf.Event.create(_meeting(WhoId=people["contacts"][0]))["id"]
    user = people["user"]
    error = _error(
        lambda: sf.EventRelation.create({"EventId": event, "RelationId": user, "IsParent": True})
    )
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    sf.EventRelation.create({"EventId": event, "RelationId": user})
    assert _rows(sf, event)[user]["IsInvitee"] is True


def test_a_related_record_is_a_parent_and_never_an_invitee(sf, people):
    """RELATION_PAGE: a What (IsWhat true) relates the record; only people are invited."""
    event = sf.Event.create(_meeting(WhoId=people["contacts"][0]))["id"]
    account = people["account"]
    error = _error(
        lambda: sf.EventRelation.create(
            {"EventId": event, "RelationId": account, "IsWhat": True, "IsInvitee": True}
        )
    )
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    sf.EventRelation.create({"EventId": event, "RelationId": account, "IsWhat": True})
    assert _rows(sf, event)[account]["IsParent"] is True
    record = sf.Event.get(event)
    assert (record["WhatId"], record["WhatCount"]) == (account, 1)


def test_deleting_an_event_deletes_all_its_relation_rows(sf, people):
    """RELATION_PAGE: "If you delete an event, then relations between the event and any
    specified contacts, leads, and other records are also deleted"."""
    c0, c1 = people["contacts"][:2]
    event = sf.Event.create(_meeting(WhoId=c0, WhatId=people["account"]))["id"]
    sf.EventRelation.create({"EventId": event, "RelationId": c1})
    sf.Event.delete(event)
    assert _rows(sf, event) == {}
    soql = f"SELECT Id FROM EventRelation WHERE EventId = '{event}' AND IsDeleted = true"
    assert len(sf.query_all(soql, include_deleted=True)["records"]) == 3


# --------------------------------------------------------------- Shared Activities off


def test_without_shared_activities_event_relation_only_invites(sf, fresh_emulator, people):
    """RELATION_PAGE: "If Shared Activities Isn't Enabled: EventRelation records only
    represent invitees [...] An event can be related to one contact or lead"; IsInvitee
    and AccountId are visible only with Shared Activities (RELATION_FIELDS_PAGE)."""
    fresh_emulator.set_settings(shared_activities=False)
    c0, c1 = people["contacts"][:2]
    event = sf.Event.create(_meeting(WhoId=c0))["id"]
    names = {f["name"] for f in sf.EventRelation.describe()["fields"]}
    assert {"EventId", "RelationId", "Status"} <= names
    assert not names & {"IsParent", "IsInvitee", "IsWhat", "AccountId"}
    sf.EventRelation.create({"EventId": event, "RelationId": c1})
    rows = sf.query(f"SELECT RelationId FROM EventRelation WHERE EventId = '{event}'")
    assert [r["RelationId"] for r in rows["records"]] == [c1]
    assert sf.Event.get(event)["WhoId"] == c0
    error = _error(
        lambda: sf.EventRelation.create({"EventId": event, "RelationId": people["account"]})
    )
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_turning_shared_activities_on_relates_the_events_who_kept_as_one_row(
    sf, fresh_emulator, people
):
    """Events written without Shared Activities get their parent rows when it is enabled;
    an invitee row of the WhoId becomes the relating row (one row per person)."""
    fresh_emulator.set_settings(shared_activities=False)
    c0 = people["contacts"][0]
    event = sf.Event.create(_meeting(WhoId=c0, WhatId=people["account"]))["id"]
    sf.EventRelation.create({"EventId": event, "RelationId": c0})
    fresh_emulator.set_settings(shared_activities=True)
    rows = _rows(sf, event)
    assert (rows[c0]["IsParent"], rows[c0]["IsInvitee"]) == (True, True)
    assert rows[people["account"]]["IsParent"] is True
    assert sf.Event.get(event)["WhoCount"] == 1


# -------------------------------------------------------------------------------- times


def test_a_timed_event_takes_its_duration_from_its_end_and_its_end_from_its_duration(sf):
    """EVENT_PAGE: "a value must be supplied for either DurationInMinutes or EndDateTime"."""
    by_end = sf.Event.get(sf.Event.create(_meeting(EndDateTime=f"{DAY}T11:30:00Z"))["id"])
    assert by_end["DurationInMinutes"] == 90
    assert by_end["ActivityDateTime"] == f"{DAY}T10:00:00.000+0000"
    assert by_end["ActivityDate"] == DAY
    by_duration = sf.Event.create(
        {"Subject": "x", "StartDateTime": f"{DAY}T23:30:00Z", "DurationInMinutes": 45}
    )
    assert sf.Event.get(by_duration["id"])["EndDateTime"] == f"{NEXT_DAY}T00:15:00.000+0000"


def test_duration_and_end_must_agree_and_one_of_them_must_be_given(sf):
    """EVENT_PAGE: "Supplying values in both fields is allowed if the values add up to the
    same amount of time"; from API 39.0 "If there's no value for the DurationInMinutes
    field, errors appear in the EndDateTime field. Otherwise, they appear in the
    DurationInMinutes field"."""
    error = _error(lambda: sf.Event.create(_meeting(DurationInMinutes=30)))
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert error["fields"] == ["DurationInMinutes"]
    error = _error(lambda: sf.Event.create({"Subject": "x", "StartDateTime": f"{DAY}T10:00:00Z"}))
    assert error["errorCode"] == "REQUIRED_FIELD_MISSING" and error["fields"] == ["EndDateTime"]
    error = _error(lambda: sf.Event.create({"Subject": "x", "EndDateTime": f"{DAY}T10:00:00Z"}))
    assert error["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_start_given_twice_must_match(sf):
    """EVENT_PAGE: StartDateTime: "ActivityDate and ActivityDateTime must either be null or
    match the value of this field"."""
    error = _error(lambda: sf.Event.create(_meeting(ActivityDateTime=f"{DAY}T09:00:00Z")))
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    same = sf.Event.create(_meeting(ActivityDateTime=f"{DAY}T10:00:00Z"))
    assert same["success"]


def test_an_all_day_event_lasts_a_day_unless_told_and_whole_days_always(sf):
    """EVENT_PAGE: for an all-day Event "If both fields are null, the duration defaults to
    one day"; ActivityDate holds its date; end and duration "add up to the same amount of
    time", so a day's Event ends at the next midnight."""
    one = sf.Event.get(
        sf.Event.create({"Subject": "x", "IsAllDayEvent": True, "ActivityDate": DAY})["id"]
    )
    assert (one["DurationInMinutes"], one["StartDateTime"]) == (1440, f"{DAY}T00:00:00.000+0000")
    assert one["EndDateTime"] == f"{NEXT_DAY}T00:00:00.000+0000"
    two = sf.Event.create(
        {
            "Subject": "x",
            "IsAllDayEvent": True,
            "StartDateTime": f"{DAY}T15:00:00Z",
            "EndDateTime": f"{NEXT_DAY}T00:00:00Z",
            "DurationInMinutes": 1440,
        }
    )
    assert sf.Event.get(two["id"])["ActivityDate"] == DAY
    error = _error(
        lambda: sf.Event.create(
            {"Subject": "x", "IsAllDayEvent": True, "ActivityDate": DAY, "DurationInMinutes": 60}
        )
    )
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_an_event_ends_after_it_starts_and_within_fourteen_days(sf):
    """An end before the start, or a multiday Event over 14 days: refused (Salesforce's
    documented ceiling for multiday events; the error code is the harsher choice)."""
    error = _error(lambda: sf.Event.create(_meeting(EndDateTime=f"{DAY}T09:00:00Z")))
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION" and error["fields"] == ["EndDateTime"]
    error = _error(
        lambda: sf.Event.create(
            {"Subject": "x", "StartDateTime": f"{DAY}T10:00:00Z", "DurationInMinutes": 20161}
        )
    )
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_moving_an_events_start_keeps_its_length(sf):
    """An update that moves the start and says nothing of the end keeps the duration."""
    event = sf.Event.create(_meeting())["id"]
    sf.Event.update(event, {"StartDateTime": f"{NEXT_DAY}T08:00:00Z"})
    record = sf.Event.get(event)
    assert (record["EndDateTime"], record["DurationInMinutes"]) == (
        f"{NEXT_DAY}T09:00:00.000+0000",
        60,
    )
    sf.Event.update(event, {"EndDateTime": f"{NEXT_DAY}T08:15:00Z"})
    assert sf.Event.get(event)["DurationInMinutes"] == 15


# ------------------------------------------------------------------- fields and the key


def test_event_text_limits_count_utf16_code_units(sf):
    """EVENT_PAGE: Subject "Limit: 255 characters", Location 255; Salesforce counts UTF-16
    code units, so an emoji is two."""
    emoji = "\N{GRINNING FACE}"
    error = _error(lambda: sf.Event.create(_meeting(Subject=emoji * 128)))
    assert error["errorCode"] == "STRING_TOO_LONG" and error["fields"] == ["Subject"]
    error = _error(lambda: sf.Event.create(_meeting(Location="ab" + emoji * 127)))
    assert error["errorCode"] == "STRING_TOO_LONG" and error["fields"] == ["Location"]
    assert sf.Event.create(_meeting(Subject="a" + emoji * 127, Location=emoji * 127))["success"]


def test_event_subtype_is_set_on_create_and_never_changed(sf):
    """EVENT_PAGE: EventSubtype "This field isn't updateable"."""
    event = sf.Event.create(_meeting())["id"]
    assert sf.Event.get(event)["EventSubtype"] == "Event"
    error = _error(lambda: sf.Event.update(event, {"EventSubtype": "Event"}))
    assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_events_upsert_on_the_activity_key_through_bulk(sf):
    """Bulk API 2.0 upsert on the Activity external-ID field: created once, then updated
    (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/upsert_job.htm)."""
    rows = [
        {
            "Activity_Sync_Key__c": f"ase_k{i}",
            "Subject": f"Meeting {i}",
            "StartDateTime": f"{DAY}T1{i}:00:00Z",
            "EndDateTime": f"{DAY}T1{i}:30:00Z",
        }
        for i in range(3)
    ]

    def upsert() -> list[dict]:
        result = sf.bulk2.Event.upsert(
            records=rows, external_id_field="Activity_Sync_Key__c", wait=0.05
        )
        text = sf.bulk2.Event.get_successful_records(result[0]["job_id"])
        return list(csv.DictReader(io.StringIO(text)))

    assert {r["sf__Created"] for r in upsert()} == {"true"}
    again = upsert()
    assert {r["sf__Created"] for r in again} == {"false"}
    soql = "SELECT Id FROM Event WHERE Activity_Sync_Key__c LIKE 'ase_k%'"
    assert len(sf.query_all(soql)["records"]) == 3


def test_a_key_a_task_holds_is_refused_to_an_event(sf):
    """Task and Event share Activity's custom fields, so one Unique key field spans both
    (https://help.salesforce.com/s/articleView?id=sf.customize_activities.htm)."""
    task = sf.Task.create({"Subject": "x", "Activity_Sync_Key__c": "shared-key"})["id"]
    error = _error(lambda: sf.Event.create(_meeting(Activity_Sync_Key__c="shared-key")))
    assert error["errorCode"] == "DUPLICATE_VALUE" and task[:15] in error["message"]
    event = sf.Event.create(_meeting(Activity_Sync_Key__c="event-key"))["id"]
    error = _error(lambda: sf.Task.create({"Subject": "x", "Activity_Sync_Key__c": "event-key"}))
    assert error["errorCode"] == "DUPLICATE_VALUE" and event[:15] in error["message"]


def test_soql_reads_events_and_their_relating_rows_by_rest_and_bulk(sf, people):
    """SOQL on both objects, filtered on the flags the loader and reconciliation use."""
    c0, c1 = people["contacts"][:2]
    event = sf.Event.create(_meeting(WhoId=c0, Activity_Sync_Key__c="ase_q"))["id"]
    sf.EventRelation.create({"EventId": event, "RelationId": c1, "IsParent": True})
    sf.EventRelation.create({"EventId": event, "RelationId": people["user"]})
    soql = (
        "SELECT EventId, RelationId FROM EventRelation WHERE IsParent = true "
        f"AND IsWhat = false AND EventId IN ('{event}')"
    )
    assert {r["RelationId"] for r in sf.query(soql)["records"]} == {c0, c1}
    bulk = "".join(sf.bulk2.EventRelation.query(soql))
    assert {r["RelationId"] for r in csv.DictReader(io.StringIO(bulk))} == {c0, c1}
    found = sf.query(
        "SELECT Id, StartDateTime, DurationInMinutes FROM Event "
        f"WHERE Activity_Sync_Key__c = 'ase_q' AND ActivityDate = {DAY}"
    )["records"]
    assert [(r["Id"], r["DurationInMinutes"]) for r in found] == [(event, 60)]


def test_describe_tells_which_event_fields_can_change(sf):
    """EVENT_PAGE and RELATION_FIELDS_PAGE: EventSubtype not updateable; IsParent and
    IsInvitee "Create, Defaulted on create, [...] Update"; EventId, RelationId create only."""
    event = {f["name"]: f for f in sf.Event.describe()["fields"]}
    assert event["EventSubtype"]["updateable"] is False
    assert event["Activity_Sync_Key__c"]["externalId"] is True
    relation = {f["name"]: f for f in sf.EventRelation.describe()["fields"]}
    for name in ("IsParent", "IsInvitee"):
        assert (relation[name]["updateable"], relation[name]["defaultedOnCreate"]) == (True, True)
    for name in ("EventId", "RelationId", "IsWhat"):
        assert (relation[name]["createable"], relation[name]["updateable"]) == (True, False)
