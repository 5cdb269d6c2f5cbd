"""Field-level checks every write gets, whichever API it comes through."""

from __future__ import annotations

import csv
import io

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest


def _error(call) -> dict:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        call()
    return caught.value.content[0]


def _contact(sf) -> str:
    return sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]


def test_required_fields_are_named_in_the_error(sf):
    error = _error(lambda: sf.Lead.create({"FirstName": "Nameless"}))
    assert error["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert error["fields"] == ["LastName", "Company"]
    assert "[LastName, Company]" in error["message"]


def test_subject_and_description_lengths_are_enforced(sf):
    assert sf.Task.create({"Subject": "s" * 255, "Description": "d" * 32_000})["success"]
    error = _error(lambda: sf.Task.create({"Subject": "s" * 256}))
    assert (error["errorCode"], error["fields"]) == ("STRING_TOO_LONG", ["Subject"])
    error = _error(lambda: sf.Task.create({"Subject": "ok", "Description": "d" * 32_001}))
    assert (error["errorCode"], error["fields"]) == ("STRING_TOO_LONG", ["Description"])


def test_read_only_fields_cannot_be_written(sf):
    error = _error(lambda: sf.Task.create({"Subject": "x", "WhoCount": 3}))
    assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    task = sf.Task.create({"Subject": "x", "TaskSubtype": "Email"})["id"]
    error = _error(lambda: sf.Task.update(task, {"TaskSubtype": "Call"}))
    assert (error["errorCode"], error["fields"]) == (
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        ["TaskSubtype"],
    )


def test_an_insert_may_not_carry_an_id(sf):
    contact = _contact(sf)
    error = _error(lambda: sf.Contact.create({"Id": contact, "LastName": "Copy"}))
    assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_references_must_be_well_formed_of_the_right_object_and_alive(sf):
    error = _error(lambda: sf.Contact.create({"LastName": "x", "AccountId": "not-an-id"}))
    assert error["errorCode"] == "MALFORMED_ID"
    error = _error(lambda: sf.Contact.create({"LastName": "x", "AccountId": _contact(sf)}))
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    error = _error(lambda: sf.Contact.create({"LastName": "x", "AccountId": "0018c0000009999AAA"}))
    assert error["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    account = sf.Account.create({"Name": "Doomed"})["id"]
    sf.Account.delete(account)
    error = _error(lambda: sf.Contact.create({"LastName": "x", "AccountId": account}))
    assert error["errorCode"] == "ENTITY_IS_DELETED"


def test_a_fifteen_character_reference_is_stored_in_eighteen(sf):
    account = sf.Account.create({"Name": "Short Id"})["id"]
    contact = sf.Contact.create({"LastName": "x", "AccountId": account[:15]})["id"]
    assert sf.Contact.get(contact)["AccountId"] == account


def test_inactive_owners_are_refused(sf):
    inactive = sf.User.create(
        {"Username": "gone@x.com", "LastName": "Gone", "Email": "gone@x.com", "IsActive": False}
    )["id"]
    error = _error(lambda: sf.Task.create({"Subject": "x", "OwnerId": inactive}))
    assert error["errorCode"] == "INACTIVE_OWNER_OR_USER"


def test_owner_defaults_to_the_integration_user(sf, fresh_emulator):
    task = sf.Task.create({"Subject": "x"})["id"]
    record = sf.Task.get(task)
    assert record["OwnerId"] == fresh_emulator.info.user_id
    assert (record["Status"], record["Priority"], record["IsClosed"]) == (
        "Not Started",
        "Normal",
        False,
    )


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("Email", "not an email", "INVALID_EMAIL_ADDRESS"),
        ("ActivityDate", "02/01/2025", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("ActivityDate", "2025-02-30", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("IsConverted", "maybe", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
    ],
)
def test_values_must_fit_their_type(sf, field, value, code):
    on_task = field == "ActivityDate"
    obj = sf.Task if on_task else sf.Lead
    body = {"Subject": "x"} if on_task else {"LastName": "x", "Company": "y"}
    assert _error(lambda: obj.create({**body, field: value}))["errorCode"] == code


def test_datetimes_with_offsets_are_stored_in_utc(sf):
    event = sf.Event.create(
        {
            "Subject": "Call",
            "StartDateTime": "2025-03-01T10:00:00+02:00",
            "EndDateTime": "2025-03-01T08:30:00.250Z",
        }
    )["id"]
    record = sf.Event.get(event)
    assert record["StartDateTime"] == "2025-03-01T08:00:00.000+0000"
    assert record["EndDateTime"] == "2025-03-01T08:30:00.250+0000"


def test_json_null_and_empty_string_clear_a_field(sf):
    contact = sf.Contact.create({"LastName": "x", "Title": "t", "Phone": "1"})["id"]
    sf.Contact.update(contact, {"Title": None, "Phone": ""})
    record = sf.Contact.get(contact)
    assert record["Title"] is None and record["Phone"] is None


def test_one_upsert_batch_may_not_name_a_key_twice(sf):
    key = "Activity_Sync_Key__c"
    result = sf.bulk2.Task.upsert(
        records=[
            {key: "same", "Subject": "a"},
            {key: "same", "Subject": "b"},
            {key: "other", "Subject": "c"},
        ],
        external_id_field=key,
        wait=0.05,
    )
    failed = list(
        csv.DictReader(io.StringIO(sf.bulk2.Task.get_failed_records(result[0]["job_id"])))
    )
    assert sorted(r["Subject"] for r in failed) == ["a", "b"]
    assert all(r["sf__Error"].startswith("DUPLICATE_VALUE:") for r in failed)


def test_an_upsert_row_without_its_key_fails(sf):
    result = sf.bulk2.Task.upsert(
        records=[{"Activity_Sync_Key__c": "", "Subject": "keyless"}],
        external_id_field="Activity_Sync_Key__c",
        wait=0.05,
    )
    failed = sf.bulk2.Task.get_failed_records(result[0]["job_id"])
    assert "MISSING_ARGUMENT:Activity_Sync_Key__c not specified" in failed


def test_deleting_twice_reports_the_entity_as_deleted(sf):
    account = sf.Account.create({"Name": "Twice"})["id"]
    sf.Account.delete(account)
    result = sf.restful("composite/sobjects", method="DELETE", params={"ids": account})
    assert result[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"


# Text limits count UTF-16 code units: "Surrogate pair characters are treated as two
# characters" (https://help.salesforce.com/s/articleView?id=005166849&type=1); Subject is
# "Limit: 255 characters" (Task, Object Reference:
# https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_task.htm).
EMOJI = "\N{GRINNING FACE}"


def test_text_limits_count_an_emoji_as_two_utf16_code_units(sf):
    assert sf.Task.create({"Subject": EMOJI * 127 + "x", "Description": EMOJI * 16_000})["success"]
    error = _error(lambda: sf.Task.create({"Subject": EMOJI * 128}))
    assert (error["errorCode"], error["fields"]) == ("STRING_TOO_LONG", ["Subject"])
    error = _error(lambda: sf.Task.create({"Subject": "ok", "Description": EMOJI * 16_000 + "x"}))
    assert (error["errorCode"], error["fields"]) == ("STRING_TOO_LONG", ["Description"])
    job = sf.bulk2.Task.insert(records=[{"Subject": "é" * 200 + EMOJI * 28}], wait=0.05)
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Task.get_failed_records(job[0]["job_id"]))))
    assert failed[0]["sf__Error"].startswith("STRING_TOO_LONG:Subject: data value too large")


# TaskSubtype: "Restricted picklist", "LinkedIn —Available in API version 56.0 and later",
# "The Cadence subtype is an internal value used by Sales Engagement, and can't be set
# manually" (Task, Object Reference, same page).
def test_task_subtype_is_a_restricted_picklist_the_api_cannot_set_to_cadence(sf, fresh_emulator):
    described = {f["name"]: f for f in sf.Task.describe()["fields"]}["TaskSubtype"]
    assert described["restrictedPicklist"] is True
    assert [v["value"] for v in described["picklistValues"]] == [
        "Task",
        "Email",
        "ListEmail",
        "Cadence",
        "Call",
        "LinkedIn",
    ]
    for value in ("Task", "Email", "ListEmail", "Call", "LinkedIn"):
        assert sf.Task.create({"Subject": value, "TaskSubtype": value})["success"]
    for value in ("Cadence", "Meeting", "email"):
        error = _error(lambda value=value: sf.Task.create({"Subject": "x", "TaskSubtype": value}))
        assert error == {
            "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "message": f"bad value for restricted picklist field: {value}",
            "fields": ["TaskSubtype"],
        }
    older = fresh_emulator.simple_salesforce(version="55.0")
    error = _error(lambda: older.Task.create({"Subject": "x", "TaskSubtype": "LinkedIn"}))
    assert error["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


# "The earliest valid date is 1700-01-01T00:00:00Z GMT ... The latest valid date is
# 4000-12-31T00:00:00Z GMT" (Data Loader Guide, Data Import Dates:
# https://developer.salesforce.com/docs/atlas.en-us.dataLoader.meta/dataLoader/data_loader_dates.htm);
# an out-of-range date fails FIELD_INTEGRITY_EXCEPTION
# (https://salesforce.stackexchange.com/questions/339236).
def test_dates_salesforce_cannot_hold_are_refused_row_by_row(sf):
    dates = ["1700-01-01", "4000-12-31", "1699-12-31", "4001-01-01", "9999-01-01"]
    job = sf.bulk2.Task.insert(
        records=[{"Subject": day, "ActivityDate": day} for day in dates], wait=0.05
    )[0]
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (5, 3)
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Task.get_failed_records(job["job_id"]))))
    assert sorted(row["ActivityDate"] for row in failed) == sorted(dates[2:])
    for row in failed:
        assert row["sf__Error"].startswith("FIELD_INTEGRITY_EXCEPTION:Due Date Only: date outside")
        assert row["sf__Error"].endswith(f"): {row['ActivityDate']}:ActivityDate")
    stored = sf.query(
        "SELECT Subject, ActivityDate FROM Task WHERE Subject IN ('1700-01-01', '4000-12-31')"
    )
    assert sorted(r["ActivityDate"] for r in stored["records"]) == dates[:2]


def test_a_datetime_counts_by_its_utc_date_against_salesforces_range(sf):
    last = {"Subject": "late", "StartDateTime": "4000-12-31T23:00:00Z"}
    assert sf.Event.create({**last, "EndDateTime": "4000-12-31T23:59:00Z"})["success"]
    error = _error(lambda: sf.Event.create({**last, "EndDateTime": "4001-01-01T00:00:00Z"}))
    assert (error["errorCode"], error["fields"]) == ("FIELD_INTEGRITY_EXCEPTION", ["EndDateTime"])
    assert "4001-01-01T00:00:00Z" in error["message"]
    # 00:30 at UTC+1 is still 1699 in UTC.
    early = {"Subject": "early", "EndDateTime": "1700-01-01T02:00:00Z"}
    error = _error(lambda: sf.Event.create({**early, "StartDateTime": "1700-01-01T00:30:00+01:00"}))
    assert (error["errorCode"], error["fields"]) == ("FIELD_INTEGRITY_EXCEPTION", ["StartDateTime"])
    assert sf.Event.create({**early, "StartDateTime": "1700-01-01T01:30:00+01:00"})["success"]


# Email Address Internationalization: non-ASCII local parts and domains, "stored and
# displayed using Unicode characters"; "EAI requires API version 49.0 or later"
# (https://help.salesforce.com/s/articleView?id=sales.emailadmin_eai.htm,
# https://help.salesforce.com/s/articleView?id=sales.emailadmin_eai_prepare.htm).
INTERNATIONAL = [
    "zoë@exämple.com",
    "ZOË@XN--EXMPLE-CUA.COM",
    "用户@例え.テスト",
    "o'brien@example.com",
]
NOT_ADDRESSES = [
    "zoë@exä mple.com",  # a space in the domain
    "zoë@exämple",  # no top-level domain
    "zoë@-exämple.com",  # a label starting with a hyphen
    "a@xn--zz.com",  # an A-label that is no Punycode
    "zo\u0000ë@exämple.com",  # a control character
    "zoë@@exämple.com",
    "zoë",
]


def test_email_fields_take_internationalised_addresses_as_written(sf):
    for address in INTERNATIONAL:
        contact = sf.Contact.create({"LastName": "Intl", "Email": address})["id"]
        assert sf.Contact.get(contact)["Email"] == address


def test_email_fields_refuse_garbage_in_any_script(sf):
    for address in NOT_ADDRESSES:
        error = _error(lambda a=address: sf.Contact.create({"LastName": "Bad", "Email": a}))
        assert (error["errorCode"], error["fields"]) == ("INVALID_EMAIL_ADDRESS", ["Email"]), (
            address
        )


def test_internationalised_addresses_need_api_49(fresh_emulator):
    older = fresh_emulator.simple_salesforce(version="48.0")
    error = _error(lambda: older.Contact.create({"LastName": "Old", "Email": "zoë@exämple.com"}))
    assert error["errorCode"] == "INVALID_EMAIL_ADDRESS"
    assert older.Contact.create({"LastName": "Old", "Email": "o'brien@example.com"})["success"]
    newer = fresh_emulator.simple_salesforce(version="49.0")
    assert newer.Contact.create({"LastName": "New", "Email": "zoë@exämple.com"})["success"]
