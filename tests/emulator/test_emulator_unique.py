"""The external-ID key is Unique and case-sensitive, as the README has users create it.

Pages imitated:
- REST "Upsert Records Using sObject Rows by External ID": "If you're upserting a record for
  an object that has a custom field with both the External ID and Unique attributes
  selected (a unique index) ... The Unique attribute prevents the creation of duplicates."
  https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_upsert_patch.htm
- Apex "Upserting Records": "Custom field matching is case-insensitive only if the custom
  field has the Unique and Treat "ABC" and "abc" as duplicate values (case insensitive)
  attributes selected as part of the field definition."
  https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/langCon_apex_dml_examples_upsert.htm
- The DUPLICATE_VALUE answer ("duplicate value found: <field> duplicates value on record
  with id: <Id>"), as Salesforce gives it to a Task upsert:
  https://salesforce.stackexchange.com/questions/197382
"""

from __future__ import annotations

import csv
import io

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

KEY = "Activity_Sync_Key__c"
DUPLICATE = "duplicate value found: Activity_Sync_Key__c duplicates value on record with id: "


def _error(call) -> dict:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        call()
    return caught.value.content[0]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_describe_reports_the_key_unique_external_id_and_case_sensitive(sf):
    fields = {f["name"]: f for f in sf.Task.describe()["fields"]}
    key = fields[KEY]
    assert (key["unique"], key["externalId"], key["caseSensitive"], key["idLookup"]) == (
        True,
        True,
        True,
        True,
    )
    assert fields["Subject"]["unique"] is False and fields["Subject"]["externalId"] is False


def test_a_second_task_with_a_held_key_fails_duplicate_value_naming_the_holder(sf):
    holder = sf.Task.create({"Subject": "first", KEY: "as1_held"})["id"]
    error = _error(lambda: sf.Task.create({"Subject": "second", KEY: "as1_held"}))
    assert error == {"errorCode": "DUPLICATE_VALUE", "message": DUPLICATE + holder, "fields": []}
    job = sf.bulk2.Task.insert(records=[{"Subject": "bulk", KEY: "as1_held"}], wait=0.05)
    failed = _rows(sf.bulk2.Task.get_failed_records(job[0]["job_id"]))
    assert failed[0]["sf__Error"] == f"DUPLICATE_VALUE:{DUPLICATE}{holder}:--"
    assert sf.query(f"SELECT COUNT() FROM Task WHERE {KEY} = 'as1_held'")["totalSize"] == 1


def test_an_update_that_takes_another_tasks_key_fails_duplicate_value(sf):
    holder = sf.Task.create({"Subject": "a", KEY: "as1_a"})["id"]
    other = sf.Task.create({"Subject": "b", KEY: "as1_b"})["id"]
    error = _error(lambda: sf.Task.update(other, {KEY: "as1_a"}))
    assert (error["errorCode"], error["message"]) == ("DUPLICATE_VALUE", DUPLICATE + holder)
    sf.Task.update(holder, {KEY: "as1_a", "Subject": "keeps its own key"})
    assert sf.Task.get(holder)["Subject"] == "keeps its own key"


def test_two_rows_of_one_insert_with_one_key_make_one_task_and_one_duplicate_value(sf):
    job = sf.bulk2.Task.insert(
        records=[{"Subject": "one", KEY: "as1_twin"}, {"Subject": "two", KEY: "as1_twin"}],
        wait=0.05,
    )
    done = _rows(sf.bulk2.Task.get_successful_records(job[0]["job_id"]))
    failed = _rows(sf.bulk2.Task.get_failed_records(job[0]["job_id"]))
    assert len(done) == 1 and len(failed) == 1
    assert failed[0]["sf__Error"] == f"DUPLICATE_VALUE:{DUPLICATE}{done[0]['sf__Id']}:--"


def test_matching_is_case_sensitive_so_a_key_in_other_case_is_another_task(sf):
    lower = sf.Task.upsert(f"{KEY}/as1_case", {"Subject": "lower"}, raw_response=True).json()
    upper = sf.Task.upsert(f"{KEY}/AS1_CASE", {"Subject": "upper"}, raw_response=True).json()
    assert upper["created"] is True and upper["id"] != lower["id"]
    again = sf.Task.upsert(f"{KEY}/as1_case", {"Subject": "lower 2"}, raw_response=True).json()
    assert (again["created"], again["id"]) == (False, lower["id"])
    assert sf.Task.get_by_custom_id(KEY, "AS1_CASE")["Subject"] == "upper"


def test_a_deleted_task_in_the_recycle_bin_leaves_its_key_free(sf):
    gone = sf.Task.create({"Subject": "deleted", KEY: "as1_reused"})["id"]
    sf.Task.delete(gone)
    again = sf.Task.upsert(f"{KEY}/as1_reused", {"Subject": "new"}, raw_response=True).json()
    assert again["created"] is True and again["id"] != gone


def test_an_org_whose_key_is_not_unique_allows_twins_and_cannot_make_it_unique_then(
    sf, fresh_emulator
):
    fresh_emulator.set_settings(task_external_id_unique=False)
    assert {f["name"]: f for f in sf.Task.describe()["fields"]}[KEY]["unique"] is False
    first = sf.Task.create({"Subject": "one", KEY: "as1_twin"})["id"]
    second = sf.Task.create({"Subject": "two", KEY: "as1_twin"})["id"]
    assert first != second
    session = fresh_emulator.session()
    answer = session.post(
        f"{fresh_emulator.info.instance_url}/__emulator/settings",
        json={"task_external_id_unique": True},
        headers={"Authorization": f"Bearer {fresh_emulator.info.access_token}"},
    )
    assert answer.status_code == 400 and "as1_twin" in answer.json()[0]["message"]
