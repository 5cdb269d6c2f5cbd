"""The org's settable clock, archived activities and the 15-day Recycle Bin.

Pages imitated:
- "Archived Activities": "Tasks with an IsClosed value of true and an ActivityDate value
  greater than or equal to 365 days old" are archived; "You cannot use query() as it
  automatically filters out all records where isArchived is set to true"; "You can update
  or delete archived records, though you cannot update the isArchived field."
  https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_guidelines_archive.htm
- Apex "Restoring Deleted Records": "the records are placed in the Recycle Bin for 15 days,
  after which they are permanently deleted."
  https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/langCon_apex_dml_examples_undelete.htm
Undocumented, and chosen harsher (``salesforce_emulator.retention``): an upsert does not
find an archived Task and fails DUPLICATE_VALUE; query leaves out the relations of
archived Tasks; a write archives at once.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

KEY = "Activity_Sync_Key__c"


def _today() -> date:
    return datetime.now(UTC).date()


def _ago(days: int) -> str:
    return (_today() - timedelta(days=days)).isoformat()


def _keys(sf, soql: str, *, include_deleted: bool = False) -> set[str]:
    records = sf.query_all(soql, include_deleted=include_deleted)["records"]
    return {r[KEY] for r in records}


def _contacts(sf, n: int) -> list[str]:
    return [r["Id"] for r in sf.query(f"SELECT Id FROM Contact ORDER BY Id LIMIT {n}")["records"]]


def test_query_leaves_out_closed_tasks_a_year_old_and_query_all_returns_them_archived(sf):
    tasks = {
        "as1_365": {"Status": "Completed", "ActivityDate": _ago(365)},
        "as1_364": {"Status": "Completed", "ActivityDate": _ago(364)},
        "as1_open": {"Status": "Not Started", "ActivityDate": _ago(800)},
    }
    for key, fields in tasks.items():
        sf.Task.create({"Subject": key, KEY: key, **fields})
    soql = f"SELECT {KEY}, IsArchived FROM Task"
    assert _keys(sf, soql) == {"as1_364", "as1_open"}
    every = sf.query_all(soql, include_deleted=True)["records"]
    assert {r[KEY]: r["IsArchived"] for r in every} == {
        "as1_365": True,
        "as1_364": False,
        "as1_open": False,
    }
    bulk_query = "".join(sf.bulk2.Task.query(f"SELECT {KEY} FROM Task", wait=0.05))
    assert "as1_365" not in bulk_query and "as1_364" in bulk_query
    bulk_all = "".join(sf.bulk2.Task.query_all(f"SELECT {KEY} FROM Task", wait=0.05))
    assert "as1_365" in bulk_all


def test_moving_the_clock_a_year_on_archives_tasks_closed_without_a_date(sf, fresh_emulator):
    sf.Task.create({"Subject": "undated", KEY: "as1_undated", "Status": "Completed"})
    assert _keys(sf, f"SELECT {KEY} FROM Task") == {"as1_undated"}
    shown = fresh_emulator.set_settings(today=(_today() + timedelta(days=365)).isoformat())
    assert shown["clock_offset_days"] == 365
    assert _keys(sf, f"SELECT {KEY} FROM Task") == set()
    fresh_emulator.set_settings(today=None)
    assert _keys(sf, f"SELECT {KEY} FROM Task") == set(), "archiving is one way"


def test_an_upsert_matching_an_archived_task_fails_duplicate_value_and_an_update_by_id_works(
    sf,
):
    old = sf.Task.create(
        {"Subject": "old", KEY: "as1_old", "Status": "Completed", "ActivityDate": _ago(400)}
    )["id"]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Task.upsert(f"{KEY}/as1_old", {"Subject": "again"})
    assert caught.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    assert caught.value.content[0]["message"].endswith(old)
    job = sf.bulk2.Task.upsert(
        records=[{KEY: "as1_old", "Subject": "bulk again"}], external_id_field=KEY, wait=0.05
    )
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Task.get_failed_records(job[0]["job_id"]))))
    assert failed[0]["sf__Error"].startswith("DUPLICATE_VALUE:") and old in failed[0]["sf__Error"]
    sf.Task.update(old, {"Subject": "updated by Id", "ActivityDate": _today().isoformat()})
    record = sf.query_all(
        f"SELECT Subject, IsArchived FROM Task WHERE Id = '{old}'", include_deleted=True
    )["records"][0]
    assert (record["Subject"], record["IsArchived"]) == ("updated by Id", True)
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Task.update(old, {"IsArchived": False})
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_query_leaves_out_the_relations_of_archived_tasks(sf):
    who = _contacts(sf, 2)
    old = sf.Task.create(
        {"Subject": "old", "WhoId": who[0], "Status": "Completed", "ActivityDate": _ago(500)}
    )["id"]
    sf.TaskRelation.create({"TaskId": old, "RelationId": who[1]})
    soql = f"SELECT RelationId FROM TaskRelation WHERE TaskId = '{old}'"
    assert sf.query(soql)["totalSize"] == 0
    assert {r["RelationId"] for r in sf.query_all(soql, include_deleted=True)["records"]} == set(
        who
    )


def test_deleted_records_stay_in_query_all_for_15_days_then_are_purged(sf, fresh_emulator):
    contact = _contacts(sf, 1)[0]
    sf.Contact.delete(contact)
    soql = f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{contact}'"
    assert sf.query(soql)["totalSize"] == 0
    fresh_emulator.set_settings(today=(_today() + timedelta(days=14)).isoformat())
    assert sf.query_all(soql, include_deleted=True)["records"][0]["IsDeleted"] is True
    fresh_emulator.set_settings(today=(_today() + timedelta(days=16)).isoformat())
    assert sf.query_all(soql, include_deleted=True)["totalSize"] == 0
    assert fresh_emulator.stats()["rows"]["Contact"] == {"live": 399, "deleted": 0}


def test_records_and_date_literals_follow_the_clock(sf, fresh_emulator):
    later = _today() + timedelta(days=30)
    fresh_emulator.set_settings(today=later.isoformat())
    task = sf.Task.create({"Subject": "from the future"})["id"]
    created = sf.Task.get(task)["CreatedDate"]
    assert created.startswith(later.isoformat())
    found = sf.query(f"SELECT Id FROM Task WHERE CreatedDate = TODAY AND Id = '{task}'")
    assert found["totalSize"] == 1


def test_the_clock_takes_a_date_or_null_and_names_anything_else(fresh_emulator):
    session = fresh_emulator.session()
    answer = session.post(
        f"{fresh_emulator.info.instance_url}/__emulator/settings",
        json={"today": "next week"},
        headers={"Authorization": f"Bearer {fresh_emulator.info.access_token}"},
    )
    assert answer.status_code == 400
    assert "'today' must be a date" in answer.json()[0]["message"]
