"""Bulk API 2.0 ingest and query jobs, through simple-salesforce's ``bulk2`` and raw HTTP."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceOperationError

KEY = "Activity_Sync_Key__c"
JOBS = "/services/data/v59.0/jobs"
# A closed Task dated a year back is archived, and upsert no longer finds it: stay recent.
TODAY = datetime.now(UTC).date().isoformat()


def _api(emu, method: str, path: str, **kwargs):
    headers = {"Authorization": f"Bearer {emu.info.access_token}", **kwargs.pop("headers", {})}
    with emu.session() as session:
        return session.request(method, emu.info.instance_url + path, headers=headers, **kwargs)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _wait(emu, job_id: str, kind: str = "ingest") -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = _api(emu, "GET", f"{JOBS}/{kind}/{job_id}").json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")


def _run_job(emu, body: dict, data: bytes) -> dict:
    job = _api(emu, "POST", f"{JOBS}/ingest", json={"contentType": "CSV", **body}).json()
    assert job["state"] == "Open"
    upload = _api(
        emu,
        "PUT",
        f"{JOBS}/ingest/{job['id']}/batches",
        data=data,
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 201
    closed = _api(emu, "PATCH", f"{JOBS}/ingest/{job['id']}", json={"state": "UploadComplete"})
    assert closed.json()["state"] == "UploadComplete"
    return _wait(emu, job["id"])


def _contacts(sf, n: int) -> list[str]:
    return [r["Id"] for r in sf.query(f"SELECT Id FROM Contact ORDER BY Id LIMIT {n}")["records"]]


def test_bulk_insert_reports_created_rows_with_their_original_columns(sf):
    result = sf.bulk2.Account.insert(
        records=[{"Name": f"Bulk {i}", "Industry": "Retail"} for i in range(30)], wait=0.05
    )
    assert result[0]["numberRecordsProcessed"] == 30 and result[0]["numberRecordsFailed"] == 0
    rows = _rows(sf.bulk2.Account.get_successful_records(result[0]["job_id"]))
    assert len(rows) == 30
    assert list(rows[0])[:2] == ["sf__Id", "sf__Created"]
    assert {r["sf__Created"] for r in rows} == {"true"}
    assert {r["Name"] for r in rows} == {f"Bulk {i}" for i in range(30)}
    assert all(r["sf__Id"].startswith("001") and len(r["sf__Id"]) == 18 for r in rows)


def test_task_upsert_on_the_external_key_creates_then_updates(sf):
    who = _contacts(sf, 3)
    records = [
        {
            KEY: f"as1_{i}",
            "Subject": f"Email {i}",
            "WhoId": who[i],
            "Status": "Completed",
            "ActivityDate": TODAY,
        }
        for i in range(3)
    ]
    first = sf.bulk2.Task.upsert(records=records, external_id_field=KEY, wait=0.05)
    created = _rows(sf.bulk2.Task.get_successful_records(first[0]["job_id"]))
    assert {r["sf__Created"] for r in created} == {"true"}
    records[0]["Subject"] = "Email 0 (edited)"
    second = sf.bulk2.Task.upsert(records=records, external_id_field=KEY, wait=0.05)
    updated = _rows(sf.bulk2.Task.get_successful_records(second[0]["job_id"]))
    assert {r["sf__Created"] for r in updated} == {"false"}
    assert {r["sf__Id"] for r in updated} == {r["sf__Id"] for r in created}
    tasks = sf.query(f"SELECT {KEY}, Subject FROM Task ORDER BY {KEY}")["records"]
    assert [t["Subject"] for t in tasks] == ["Email 0 (edited)", "Email 1", "Email 2"]


def test_a_createable_only_field_fails_the_update_branch_of_an_upsert(sf):
    record = {KEY: "as1_subtype", "Subject": "x", "TaskSubtype": "Email"}
    sf.bulk2.Task.upsert(records=[record], external_id_field=KEY, wait=0.05)
    again = sf.bulk2.Task.upsert(records=[record], external_id_field=KEY, wait=0.05)
    failed = _rows(sf.bulk2.Task.get_failed_records(again[0]["job_id"]))
    assert failed[0]["sf__Error"].startswith("INVALID_FIELD_FOR_INSERT_UPDATE:")
    assert failed[0]["sf__Error"].endswith(":TaskSubtype")


def test_failed_rows_carry_code_message_and_fields_and_keep_their_columns(sf):
    long_subject = "s" * 256
    result = sf.bulk2.Task.insert(
        records=[{"Subject": long_subject, "WhoId": "001000000000000AAA"}, {"Subject": "ok"}],
        wait=0.05,
    )
    assert result[0]["numberRecordsFailed"] == 1
    failed = _rows(sf.bulk2.Task.get_failed_records(result[0]["job_id"]))
    assert len(failed) == 1 and failed[0]["Subject"] == long_subject
    code, _, rest = failed[0]["sf__Error"].partition(":")
    assert code == "STRING_TOO_LONG" and rest.endswith(":Subject") and failed[0]["sf__Id"] == ""


def test_crlf_files_load_and_na_sets_null_while_an_empty_cell_leaves_a_value(sf, fresh_emulator):
    contact = sf.Contact.create(
        {"LastName": "Nulls", "Title": "Boss", "Phone": "555", "Email": "n@x.com"}
    )["id"]
    data = f"Id,Title,Phone\r\n{contact},#N/A,\r\n".encode()
    info = _run_job(
        fresh_emulator, {"object": "Contact", "operation": "update", "lineEnding": "CRLF"}, data
    )
    assert info["state"] == "JobComplete" and info["numberRecordsFailed"] == 0
    record = sf.Contact.get(contact)
    assert record["Title"] is None and record["Phone"] == "555"


def test_a_line_ending_that_contradicts_the_job_fails_the_job(fresh_emulator):
    info = _run_job(
        fresh_emulator,
        {"object": "Account", "operation": "insert", "lineEnding": "LF"},
        b"Name\r\nAcme\r\n",
    )
    assert info["state"] == "Failed" and "LineEnding is invalid" in info["errorMessage"]


def test_an_unknown_column_fails_the_job_and_the_client_raises(sf):
    with pytest.raises(SalesforceOperationError, match="Field name not found : Colour__c"):
        sf.bulk2.Account.insert(records=[{"Name": "x", "Colour__c": "red"}], wait=0.05)


def test_pipe_delimited_upload_with_quoted_newlines(fresh_emulator, sf):
    data = b'Subject|Description\n"Multi|Line"|"first\nsecond"\n'
    info = _run_job(
        fresh_emulator,
        {"object": "Task", "operation": "insert", "columnDelimiter": "PIPE"},
        data,
    )
    assert info["numberRecordsProcessed"] == 1 and info["numberRecordsFailed"] == 0
    task = sf.query("SELECT Description FROM Task WHERE Subject = 'Multi|Line'")["records"]
    assert [t["Description"] for t in task] == ["first\nsecond"]


def test_unprocessed_records_are_served_under_both_spellings(fresh_emulator):
    job = _api(
        fresh_emulator, "POST", f"{JOBS}/ingest", json={"object": "Account", "operation": "insert"}
    ).json()
    _api(fresh_emulator, "PUT", f"{JOBS}/ingest/{job['id']}/batches", data=b"Name\nA\nB\n")
    aborted = _api(fresh_emulator, "PATCH", f"{JOBS}/ingest/{job['id']}", json={"state": "Aborted"})
    assert aborted.json()["state"] == "Aborted"
    for spelling in ("unprocessedrecords", "unprocessedRecords"):
        response = _api(fresh_emulator, "GET", f"{JOBS}/ingest/{job['id']}/{spelling}")
        assert response.status_code == 200


def test_a_job_accepts_one_upload_only(fresh_emulator):
    job = _api(
        fresh_emulator, "POST", f"{JOBS}/ingest", json={"object": "Account", "operation": "insert"}
    ).json()
    path = f"{JOBS}/ingest/{job['id']}/batches"
    assert _api(fresh_emulator, "PUT", path, data=b"Name\nA\n").status_code == 201
    second = _api(fresh_emulator, "PUT", path, data=b"Name\nB\n")
    assert second.status_code == 400 and "multiple contents" in second.json()[0]["message"]


def test_upsert_needs_an_external_id_field(sf):
    with pytest.raises(SalesforceMalformedRequest):
        sf.bulk2.Task.upsert(records=[{"Subject": "x"}], external_id_field="Subject", wait=0.05)


def test_upsert_job_is_refused_once_the_key_field_is_gone(sf, fresh_emulator):
    fresh_emulator.set_settings(task_external_id_field=False)
    with pytest.raises(SalesforceMalformedRequest):
        sf.bulk2.Task.upsert(records=[{KEY: "k", "Subject": "x"}], external_id_field=KEY, wait=0.05)


def test_bulk_delete_and_hard_delete(sf):
    ids = [sf.Account.create({"Name": f"Del {i}"})["id"] for i in range(4)]
    sf.bulk2.Account.delete(records=[{"Id": i} for i in ids[:2]], wait=0.05)
    sf.bulk2.Account.hard_delete(records=[{"Id": i} for i in ids[2:]], wait=0.05)
    remaining = sf.query_all(
        "SELECT Id, IsDeleted FROM Account WHERE Name LIKE 'Del %'", include_deleted=True
    )["records"]
    assert {(r["Id"], r["IsDeleted"]) for r in remaining} == {(i, True) for i in ids[:2]}


def test_task_relations_load_through_bulk_insert(sf):
    people = _contacts(sf, 4)
    task = sf.Task.create({"Subject": "shared", "WhoId": people[0]})["id"]
    result = sf.bulk2.TaskRelation.insert(
        records=[{"TaskId": task, "RelationId": p} for p in people[1:]], wait=0.05
    )
    assert result[0]["numberRecordsFailed"] == 0
    again = sf.bulk2.TaskRelation.insert(
        records=[{"TaskId": task, "RelationId": people[1]}], wait=0.05
    )
    failed = _rows(sf.bulk2.TaskRelation.get_failed_records(again[0]["job_id"]))
    assert failed[0]["sf__Error"].startswith("DUPLICATE_VALUE:")
    relations = sf.query(f"SELECT RelationId FROM TaskRelation WHERE TaskId = '{task}'")["records"]
    assert {r["RelationId"] for r in relations} == set(people)
    assert sf.Task.get(task)["WhoCount"] == 4


def test_bulk_query_pages_with_locators_and_counts(sf):
    pages = list(
        sf.bulk2.Contact.query(
            "SELECT Id, Email, CreatedDate FROM Contact", max_records=150, wait=0.05
        )
    )
    rows = [row for page in pages for row in _rows(page)]
    assert len(pages) == 3 and len(rows) == 400
    assert list(rows[0]) == ["Id", "Email", "CreatedDate"]
    assert rows[0]["CreatedDate"].endswith("Z")
    assert len({r["Id"] for r in rows}) == 400


def test_bulk_query_all_returns_deleted_rows(sf):
    contact = _contacts(sf, 1)[0]
    sf.Contact.delete(contact)
    soql = f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{contact}'"
    assert _rows("".join(sf.bulk2.Contact.query(soql, wait=0.05))) == []
    assert _rows("".join(sf.bulk2.Contact.query_all(soql, wait=0.05))) == [
        {"Id": contact, "IsDeleted": "true"}
    ]


def test_bulk_query_with_bad_soql_is_refused_at_creation(sf):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        list(sf.bulk2.Contact.query("SELECT Id FROM Contact WHERE Email = 'o'brien'", wait=0.05))
    assert caught.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_jobs_are_listed_and_deleted(fresh_emulator):
    info = _run_job(fresh_emulator, {"object": "Account", "operation": "insert"}, b"Name\nA\n")
    listed = _api(fresh_emulator, "GET", f"{JOBS}/ingest").json()["records"]
    assert [j["id"] for j in listed] == [info["id"]]
    assert _api(fresh_emulator, "DELETE", f"{JOBS}/ingest/{info['id']}").status_code == 204
    assert _api(fresh_emulator, "GET", f"{JOBS}/ingest/{info['id']}").status_code == 404


def test_result_files_say_they_are_utf8_so_a_unicode_address_reads_back_as_written(
    fresh_emulator,
):
    """Result files are "Content-Type: text/csv; charset=UTF-8" (Use Compression for Bulk
    API 2.0 Query Responses: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_compression.htm);
    without the charset, requests reads text/csv as ISO-8859-1."""
    info = _run_job(
        fresh_emulator,
        {"object": "Contact", "operation": "insert"},
        "LastName,Email\nZoë,zoë@exämple.com\n".encode(),
    )
    answer = _api(fresh_emulator, "GET", f"{JOBS}/ingest/{info['id']}/successfulResults/")
    assert answer.headers["Content-Type"] == "text/csv; charset=UTF-8"
    assert _rows(answer.text)[0]["Email"] == "zoë@exämple.com"
    job = _api(
        fresh_emulator,
        "POST",
        f"{JOBS}/query",
        json={"operation": "query", "query": "SELECT Email FROM Contact WHERE LastName = 'Zoë'"},
    ).json()
    _wait(fresh_emulator, job["id"], "query")
    answer = _api(fresh_emulator, "GET", f"{JOBS}/query/{job['id']}/results")
    assert answer.headers["Content-Type"] == "text/csv; charset=UTF-8"
    assert _rows(answer.text) == [{"Email": "zoë@exämple.com"}]
