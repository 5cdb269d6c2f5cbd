"""REST API of the emulator, driven over HTTPS by the real simple-salesforce client."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)


def _contact_ids(sf, n: int) -> list[str]:
    return [r["Id"] for r in sf.query(f"SELECT Id FROM Contact ORDER BY Id LIMIT {n}")["records"]]


def test_versions_and_resources_are_listed(fresh_emulator):
    session = fresh_emulator.session()
    headers = {"Authorization": f"Bearer {fresh_emulator.info.access_token}"}
    versions = session.get(f"{fresh_emulator.info.instance_url}/services/data/", headers=headers)
    assert {"version": "59.0", "url": "/services/data/v59.0"}.items() <= next(
        v for v in versions.json() if v["version"] == "59.0"
    ).items()
    resources = session.get(
        f"{fresh_emulator.info.instance_url}/services/data/v59.0/", headers=headers
    ).json()
    assert resources["query"] == "/services/data/v59.0/query"


def test_global_describe_lists_task_relation_only_while_shared_activities_is_on(sf, fresh_emulator):
    assert "TaskRelation" in {o["name"] for o in sf.describe()["sobjects"]}
    fresh_emulator.set_settings(shared_activities=False)
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert "TaskRelation" not in names
    assert {"Task", "Contact", "Lead", "Account", "Opportunity", "User"} <= names


def test_task_describe_has_shared_activity_fields_and_the_external_key(sf, fresh_emulator):
    fields = {f["name"]: f for f in sf.Task.describe()["fields"]}
    assert fields["TaskWhoIds"]["type"] == "junctionidlist"
    assert fields["WhoCount"]["createable"] is False
    key = fields["Activity_Sync_Key__c"]
    assert key["externalId"] is True and key["type"] == "string" and key["length"] == 80
    assert fields["Subject"]["length"] == 255 and fields["Description"]["length"] == 32000
    assert fields["WhoId"]["referenceTo"] == ["Contact", "Lead"]
    fresh_emulator.set_settings(shared_activities=False, task_external_id_field=False)
    hidden = {f["name"] for f in sf.Task.describe()["fields"]}
    assert not {"TaskWhoIds", "WhoCount", "WhatCount", "Activity_Sync_Key__c"} & hidden


def test_describe_of_a_hidden_object_is_not_found(sf, fresh_emulator):
    fresh_emulator.set_settings(shared_activities=False)
    with pytest.raises(SalesforceResourceNotFound):
        sf.TaskRelation.describe()


def test_create_read_update_delete_a_contact(sf):
    account = sf.Account.create({"Name": "Initech"})["id"]
    created = sf.Contact.create(
        {"LastName": "Lumbergh", "Email": "bill@initech.com", "AccountId": account}
    )
    assert created["success"] and len(created["id"]) == 18 and created["id"].startswith("003")
    record = sf.Contact.get(created["id"])
    assert record["Name"] == "Lumbergh" and record["AccountId"] == account
    assert record["attributes"]["type"] == "Contact"
    assert sf.Contact.update(created["id"], {"FirstName": "Bill"}) == 204
    assert sf.Contact.get(created["id"])["Name"] == "Bill Lumbergh"
    assert sf.Contact.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(created["id"])


def test_a_fifteen_character_id_reads_the_same_record(sf):
    contact = _contact_ids(sf, 1)[0]
    assert sf.Contact.get(contact[:15])["Id"] == contact


def test_get_with_fields_returns_only_those(sf):
    contact = _contact_ids(sf, 1)[0]
    record = sf.restful(f"sobjects/Contact/{contact}", params={"fields": "Email,LastName"})
    assert set(record) == {"attributes", "Id", "Email", "LastName"}


def test_unknown_field_is_rejected_with_invalid_field(sf):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Task.create({"Subject": "x", "Colour__c": "red"})
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert "Colour__c" in caught.value.content[0]["message"]


def test_upsert_by_external_id_creates_then_updates_and_the_key_stays_unique(sf):
    key = "Activity_Sync_Key__c"
    first = sf.Task.upsert(f"{key}/as1_abc", {"Subject": "first"}, raw_response=True)
    assert first.status_code == 201 and first.json()["created"] is True
    second = sf.Task.upsert(f"{key}/as1_abc", {"Subject": "second"}, raw_response=True)
    assert second.status_code == 200 and second.json()["created"] is False
    assert second.json()["id"] == first.json()["id"]
    assert sf.Task.get_by_custom_id(key, "as1_abc")["Subject"] == "second"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Task.create({"Subject": "twin", key: "as1_abc"})
    assert caught.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    assert caught.value.content[0]["message"].endswith(first.json()["id"])


def test_upsert_on_a_field_that_is_not_an_external_id_is_not_found(sf):
    with pytest.raises(SalesforceResourceNotFound):
        sf.Task.upsert("Subject/hello", {"Status": "Completed"})


def test_collection_create_returns_results_in_input_order_with_per_record_errors(sf):
    result = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Account"}, "Name": "Globex"},
                {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
                {"attributes": {"type": "Account"}, "Name": "Hooli"},
            ],
        },
    )
    assert [r["success"] for r in result] == [True, False, True]
    assert result[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert result[1]["errors"][0]["fields"] == ["LastName"]
    assert (
        sf.query("SELECT COUNT() FROM Account WHERE Name IN ('Globex', 'Hooli')")["totalSize"] == 2
    )


def test_all_or_none_collection_rolls_back_every_record(sf):
    result = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Account"}, "Name": "Vandelay"},
                {"attributes": {"type": "Account"}},
            ],
        },
    )
    assert [r["success"] for r in result] == [False, False]
    assert result[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert result[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.query("SELECT COUNT() FROM Account WHERE Name = 'Vandelay'")["totalSize"] == 0


def test_collections_take_at_most_two_hundred_records(sf):
    records = [{"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="POST", json={"records": records})
    assert caught.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_collection_upsert_update_retrieve_and_delete(sf):
    key = "Activity_Sync_Key__c"
    upserted = sf.restful(
        f"composite/sobjects/Task/{key}",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Task"}, key: f"k{i}", "Subject": f"s{i}"} for i in range(3)
            ]
        },
    )
    assert [r["created"] for r in upserted] == [True, True, True]
    again = sf.restful(
        f"composite/sobjects/Task/{key}",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Task"}, key: "k0", "Subject": "changed"}]},
    )
    assert again[0]["created"] is False and again[0]["id"] == upserted[0]["id"]
    ids = [r["id"] for r in upserted]
    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Task"}, "id": ids[1], "Status": "Completed"}]},
    )
    assert updated[0]["success"]
    fetched = sf.restful(
        "composite/sobjects/Task", params={"ids": ",".join(ids), "fields": "Subject,IsClosed"}
    )
    assert [t["Subject"] for t in fetched] == ["changed", "s1", "s2"]
    assert [t["IsClosed"] for t in fetched] == [False, True, False]
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(ids)})
    assert all(r["success"] for r in deleted)
    assert sf.query("SELECT COUNT() FROM Task")["totalSize"] == 0


def test_every_response_carries_the_api_usage_header(sf, fresh_emulator):
    sf.query("SELECT Id FROM Account LIMIT 1")
    sf.query("SELECT Id FROM Account LIMIT 1")
    usage = sf.api_usage["api-usage"]
    assert usage.used == 2 and usage.total == 100_000
