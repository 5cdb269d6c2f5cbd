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
