"""Salesforce's Shared Activities rules (not the design's R1–R14) in the local Salesforce.

Who a Task may relate to, and how its relation rows follow it
(``salesforce_emulator.activity_relations``).
"""

from __future__ import annotations

import csv
import io

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound


def _ids(sf, soql: str) -> list[str]:
    return [r["Id"] for r in sf.query_all(soql)["records"]]


def _error(call) -> dict:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        call()
    return caught.value.content[0]


def _relations(sf, task: str, *, deleted: bool = False) -> set[tuple[str, bool]]:
    soql = f"SELECT RelationId, IsWhat, IsDeleted FROM TaskRelation WHERE TaskId = '{task}'"
    rows = sf.query_all(soql, include_deleted=deleted)["records"]
    return {(r["RelationId"], r["IsWhat"]) for r in rows if r["IsDeleted"] == deleted}


def _bulk_errors(sf, result) -> list[str]:
    text = sf.bulk2.TaskRelation.get_failed_records(result[0]["job_id"])
    return [row["sf__Error"] for row in csv.DictReader(io.StringIO(text))]


@pytest.fixture
def org(sf):
    """Contacts at one Account, a Lead, an Opportunity of that Account (two API calls)."""
    account = sf.Account.create({"Name": "Rules Inc"})["id"]
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
            "CloseDate": "2025-06-30",
        },
    ]
    ids = [
        r["id"] for r in sf.restful("composite/sobjects", method="POST", json={"records": records})
    ]
    return {"account": account, "contacts": ids[:3], "lead": ids[3], "opportunity": ids[4]}


def test_inserting_a_task_relates_its_who_and_what(sf, org):
    c0 = org["contacts"][0]
    task = sf.Task.create({"Subject": "hi", "WhoId": c0, "WhatId": org["opportunity"]})["id"]
    assert _relations(sf, task) == {(c0, False), (org["opportunity"], True)}
    record = sf.Task.get(task)
    assert (record["WhoCount"], record["WhatCount"]) == (1, 1)
    assert record["AccountId"] == org["account"]


def test_a_task_without_a_what_takes_its_primary_contacts_account(sf, org):
    task = sf.Task.create({"Subject": "hi", "WhoId": org["contacts"][1]})["id"]
    assert sf.Task.get(task)["AccountId"] == org["account"]


def test_who_must_be_a_contact_or_lead(sf, org):
    error = _error(lambda: sf.Task.create({"Subject": "x", "WhoId": org["account"]}))
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION" and error["fields"] == ["WhoId"]


def test_a_lead_task_takes_no_what(sf, org):
    error = _error(
        lambda: sf.Task.create({"Subject": "x", "WhoId": org["lead"], "WhatId": org["account"]})
    )
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION" and error["fields"] == ["WhatId"]
    task = sf.Task.create({"Subject": "x", "WhoId": org["lead"]})["id"]
    error = _error(lambda: sf.Task.update(task, {"WhatId": org["opportunity"]}))
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_a_lead_task_takes_no_other_people_and_a_contact_task_takes_no_lead(sf, org):
    lead_task = sf.Task.create({"Subject": "lead", "WhoId": org["lead"]})["id"]
    contact_task = sf.Task.create({"Subject": "contact", "WhoId": org["contacts"][0]})["id"]
    result = sf.bulk2.TaskRelation.insert(
        records=[
            {"TaskId": lead_task, "RelationId": org["contacts"][1]},
            {"TaskId": contact_task, "RelationId": org["lead"]},
        ],
        wait=0.05,
    )
    assert result[0]["numberRecordsFailed"] == 2
    assert all(e.startswith("FIELD_INTEGRITY_EXCEPTION:") for e in _bulk_errors(sf, result))


def test_a_task_already_related_to_contacts_cannot_take_a_lead_who(sf, org):
    task = sf.Task.create({"Subject": "x", "WhoId": org["contacts"][0]})["id"]
    sf.TaskRelation.create({"TaskId": task, "RelationId": org["contacts"][1]})
    error = _error(lambda: sf.Task.update(task, {"WhoId": org["lead"]}))
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION" and error["fields"] == ["WhoId"]


def test_sixty_contacts_in_one_job_relate_fifty_and_refuse_ten(sf, org):
    people = [
        r["sf__Id"]
        for r in csv.DictReader(
            io.StringIO(
                sf.bulk2.Contact.get_successful_records(
                    sf.bulk2.Contact.insert(
                        records=[{"LastName": f"P{i}"} for i in range(60)], wait=0.05
                    )[0]["job_id"]
                )
            )
        )
    ]
    task = sf.Task.create({"Subject": "big send", "WhoId": people[0]})["id"]
    result = sf.bulk2.TaskRelation.insert(
        records=[{"TaskId": task, "RelationId": p} for p in people[1:]], wait=0.05
    )
    assert result[0]["numberRecordsFailed"] == 10
    errors = _bulk_errors(sf, result)
    assert len(errors) == 10 and all("at most 50 contacts" in e for e in errors)
    assert errors[0].startswith("FIELD_INTEGRITY_EXCEPTION:") and errors[0].endswith(":RelationId")
    assert sf.Task.get(task)["WhoCount"] == 50
    assert len(_relations(sf, task)) == 50


def test_a_relation_pair_exists_once(sf, org):
    task = sf.Task.create({"Subject": "x", "WhoId": org["contacts"][0]})["id"]
    error = _error(
        lambda: sf.TaskRelation.create({"TaskId": task, "RelationId": org["contacts"][0]})
    )
    assert error["errorCode"] == "DUPLICATE_VALUE"


def test_a_task_has_one_what_at_most(sf, org):
    task = sf.Task.create({"Subject": "x", "WhoId": org["contacts"][0], "WhatId": org["account"]})
    error = _error(
        lambda: sf.TaskRelation.create(
            {"TaskId": task["id"], "RelationId": org["opportunity"], "IsWhat": True}
        )
    )
    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_relation_rows_need_their_task_and_person(sf, org):
    task = sf.Task.create({"Subject": "x"})["id"]
    error = _error(lambda: sf.TaskRelation.create({"TaskId": task}))
    assert error["errorCode"] == "REQUIRED_FIELD_MISSING" and error["fields"] == ["RelationId"]


def test_a_first_relation_on_a_task_without_who_becomes_its_primary(sf, org):
    task = sf.Task.create({"Subject": "x"})["id"]
    sf.TaskRelation.create({"TaskId": task, "RelationId": org["contacts"][2]})
    assert sf.Task.get(task)["WhoId"] == org["contacts"][2]


def test_changing_who_replaces_the_primary_and_clearing_it_promotes_the_oldest(sf, org):
    c0, c1, c2 = org["contacts"]
    task = sf.Task.create({"Subject": "x", "WhoId": c0})["id"]
    sf.TaskRelation.create({"TaskId": task, "RelationId": c1})
    sf.Task.update(task, {"WhoId": c2})
    assert _relations(sf, task) == {(c1, False), (c2, False)}
    assert _relations(sf, task, deleted=True) == {(c0, False)}
    sf.Task.update(task, {"WhoId": None})
    record = sf.Task.get(task)
    assert record["WhoId"] == c1 and record["WhoCount"] == 1


def test_changing_what_replaces_the_what_relation(sf, org):
    task = sf.Task.create({"Subject": "x", "WhoId": org["contacts"][0], "WhatId": org["account"]})
    sf.Task.update(task["id"], {"WhatId": org["opportunity"]})
    assert _relations(sf, task["id"]) == {(org["contacts"][0], False), (org["opportunity"], True)}


def test_deleting_the_primary_relation_promotes_another_person(sf, org):
    c0, c1, _ = org["contacts"]
    task = sf.Task.create({"Subject": "x", "WhoId": c0})["id"]
    sf.TaskRelation.create({"TaskId": task, "RelationId": c1})
    primary = sf.query(
        f"SELECT Id FROM TaskRelation WHERE TaskId = '{task}' AND RelationId = '{c0}'"
    )["records"][0]["Id"]
    sf.TaskRelation.delete(primary)
    assert sf.Task.get(task)["WhoId"] == c1


def test_deleting_a_task_deletes_its_relations(sf, org):
    task = sf.Task.create({"Subject": "x", "WhoId": org["contacts"][0], "WhatId": org["account"]})
    sf.Task.delete(task["id"])
    assert _relations(sf, task["id"]) == set()
    assert len(_relations(sf, task["id"], deleted=True)) == 2


def test_task_relation_exists_only_while_shared_activities_is_on(sf, fresh_emulator, org):
    fresh_emulator.set_settings(shared_activities=False)
    task = sf.Task.create({"Subject": "x", "WhoId": org["contacts"][0]})["id"]
    with pytest.raises(SalesforceResourceNotFound):
        sf.TaskRelation.create({"TaskId": task, "RelationId": org["contacts"][1]})
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.bulk2.TaskRelation.insert(records=[{"TaskId": task, "RelationId": org["lead"]}])
    assert caught.value.content[0]["errorCode"] == "INVALIDENTITY"
    assert "WhoCount" not in sf.Task.get(task)


def test_turning_shared_activities_back_on_relates_tasks_written_while_off(sf, fresh_emulator, org):
    fresh_emulator.set_settings(shared_activities=False)
    task = sf.Task.create({"Subject": "x", "WhoId": org["contacts"][0], "WhatId": org["account"]})
    fresh_emulator.set_settings(shared_activities=True)
    assert _relations(sf, task["id"]) == {(org["contacts"][0], False), (org["account"], True)}
    assert sf.Task.get(task["id"])["WhoCount"] == 1


def test_the_junction_id_list_is_not_writable_here(sf, org):
    error = _error(lambda: sf.Task.create({"Subject": "x", "TaskWhoIds": [org["contacts"][0]]}))
    assert error["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
