"""Bulk API 2.0 jobs as Salesforce runs them: in parallel, in 200-row transactions, and
accounting for every uploaded row whatever ends the job.

Pages imitated:
- "How Requests Are Processed": "Salesforce creates a separate batch for each 10,000
  records"; a batch that keeps failing moves "the entire job ... to the Failed state and
  remaining job data is not processed".
  https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/how_requests_are_processed.htm
- "What's the Difference Between Bulk API 2.0 and Bulk API?": "Support for parallel
  processing". https://developer.salesforce.com/docs/platform/api-asynch/guide/bulk-common-diff-two-versions.html
- "Get Job Unprocessed Record Results": "Retrieves a list of unprocessed records for failed
  or aborted jobs", with "Field data for the row that was provided in the original job data".
  https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_unprocessed_results.htm
- "Upload Job Data": "A request can provide CSV data that does not in total exceed 150 MB
  of base64 encoded content."
  https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/upload_job_data.htm
- The loser of two racing upserts on a Unique key gets DUPLICATE_VALUE:
  https://salesforce.stackexchange.com/questions/197382
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime

KEY = "Activity_Sync_Key__c"
JOBS = "/services/data/v59.0/jobs/ingest"
TERMINAL = ("JobComplete", "Failed", "Aborted")
TODAY = datetime.now(UTC).date().isoformat()


def _api(emu, method: str, path: str, **kwargs):
    headers = {"Authorization": f"Bearer {emu.info.access_token}", **kwargs.pop("headers", {})}
    with emu.session() as session:
        return session.request(method, emu.info.instance_url + path, headers=headers, **kwargs)


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _open(emu, operation: str = "upsert", data: bytes | None = None) -> str:
    body = {"object": "Task", "operation": operation, "contentType": "CSV"}
    if operation == "upsert":
        body["externalIdFieldName"] = KEY
    job = _api(emu, "POST", JOBS, json=body).json()["id"]
    if data is not None:
        put = _api(
            emu, "PUT", f"{JOBS}/{job}/batches", data=data, headers={"Content-Type": "text/csv"}
        )
        assert put.status_code == 201, put.text
    return job


def _close(emu, job: str) -> None:
    assert _api(emu, "PATCH", f"{JOBS}/{job}", json={"state": "UploadComplete"}).ok


def _info(emu, job: str) -> dict:
    return _api(emu, "GET", f"{JOBS}/{job}").json()


def _wait(emu, job: str, until=lambda info: info["state"] in TERMINAL) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = _info(emu, job)
        if until(info):
            return info
        time.sleep(0.02)
    raise AssertionError(f"job {job} never reached the awaited state: {info}")


def _results(emu, job: str) -> dict[str, list[dict[str, str]]]:
    kinds = ("successfulResults", "failedResults", "unprocessedrecords")
    return {
        kind: list(csv.DictReader(io.StringIO(_api(emu, "GET", f"{JOBS}/{job}/{kind}").text)))
        for kind in kinds
    }


def _tasks(n: int, prefix: str = "as1_job") -> list[dict[str, str]]:
    return [
        {
            KEY: f"{prefix}{i:05d}",
            "Subject": f"Task {i}",
            "Status": "Completed",
            "ActivityDate": TODAY,
        }
        for i in range(n)
    ]


def _held_keys(sf) -> set[str]:
    return {r[KEY] for r in sf.query_all(f"SELECT {KEY} FROM Task")["records"]}


def _accounted(results: dict[str, list[dict[str, str]]]) -> list[str]:
    return [row[KEY] for rows in results.values() for row in rows]


def test_two_jobs_run_at_once_on_the_default_pool_of_two_workers(fresh_emulator):
    assert fresh_emulator.stats()["jobs"]["workers"] == 2
    fresh_emulator.set_faults(slow_bulk_seconds=1.0)
    jobs = [_open(fresh_emulator, data=_csv(_tasks(5, f"as1_pool{n}_"))) for n in range(2)]
    for job in jobs:
        _close(fresh_emulator, job)
    deadline = time.monotonic() + 5
    states: list[str] = []
    while time.monotonic() < deadline:
        states = [_info(fresh_emulator, job)["state"] for job in jobs]
        if states == ["InProgress", "InProgress"]:
            break
        time.sleep(0.02)
    assert states == ["InProgress", "InProgress"], "the jobs never ran side by side"
    for job in jobs:
        assert _wait(fresh_emulator, job)["state"] == "JobComplete"


def test_one_worker_runs_jobs_one_after_another(emulator_factory):
    emu = emulator_factory(bulk_workers=1)
    assert emu.stats()["jobs"]["workers"] == 1
    emu.set_faults(slow_bulk_seconds=0.5)
    jobs = [_open(emu, data=_csv(_tasks(3, f"as1_one{n}_"))) for n in range(2)]
    for job in jobs:
        _close(emu, job)
    first = _wait(emu, jobs[0], until=lambda info: info["state"] == "InProgress")
    assert first["state"] == "InProgress" and _info(emu, jobs[1])["state"] == "UploadComplete"
    assert [_wait(emu, job)["state"] for job in jobs] == ["JobComplete", "JobComplete"]


def test_an_aborted_job_stops_at_a_200_row_transaction_and_reports_the_rest_unprocessed(
    sf, fresh_emulator
):
    fresh_emulator.set_faults(chunk_seconds=0.15)
    rows = _tasks(1000)
    job = _open(fresh_emulator, data=_csv(rows))
    _close(fresh_emulator, job)
    _wait(fresh_emulator, job, until=lambda info: info["numberRecordsProcessed"] >= 200)
    assert _api(fresh_emulator, "PATCH", f"{JOBS}/{job}", json={"state": "Aborted"}).ok
    info = _wait(fresh_emulator, job)
    results = _results(fresh_emulator, job)
    processed = len(results["successfulResults"])
    assert info["state"] == "Aborted"
    assert processed % 200 == 0 and 200 <= processed < 1000
    assert sorted(_accounted(results)) == [r[KEY] for r in rows]
    assert _held_keys(sf) == {r[KEY] for r in results["successfulResults"]}
    assert results["unprocessedrecords"][0] == rows[processed]


def test_the_loser_of_two_racing_upserts_gets_duplicate_value_naming_the_winner(sf, fresh_emulator):
    fresh_emulator.set_faults(chunk_seconds=0.5)
    rows = _tasks(50, "as1_race")
    jobs = [_open(fresh_emulator, data=_csv(rows)) for _ in range(2)]
    for job in jobs:
        _close(fresh_emulator, job)
    results = [_results(fresh_emulator, job) for job in jobs if _wait(fresh_emulator, job)]
    created = [r for res in results for r in res["successfulResults"]]
    lost = [r for res in results for r in res["failedResults"]]
    assert len(created) == 50 and len(lost) == 50
    winners = {r[KEY]: r["sf__Id"] for r in created}
    for row in lost:
        assert row["sf__Error"] == (
            f"DUPLICATE_VALUE:duplicate value found: {KEY} duplicates value on record with id: "
            f"{winners[row[KEY]]}:--"
        )
    assert sf.query(f"SELECT COUNT() FROM Task WHERE {KEY} LIKE 'as1_race%'")["totalSize"] == 50


def test_jobs_told_to_start_together_wait_for_each_other_then_race(sf, fresh_emulator):
    """The ``start_together`` fault is the tests' way to make two loads overlap on a busy
    machine: the first closed job does not start its chunks until the second is closed."""
    fresh_emulator.set_faults(chunk_seconds=0.05, start_together=2)
    rows = _tasks(50, "as1_together")
    first = _open(fresh_emulator, data=_csv(rows))
    _close(fresh_emulator, first)
    time.sleep(1.0)
    assert _info(fresh_emulator, first)["numberRecordsProcessed"] == 0
    second = _open(fresh_emulator, data=_csv(rows))
    _close(fresh_emulator, second)
    results = [
        _results(fresh_emulator, job) for job in (first, second) if _wait(fresh_emulator, job)
    ]
    assert sorted(len(r["failedResults"]) for r in results) == [0, 50]
    third = _open(fresh_emulator, data=_csv(rows))
    _close(fresh_emulator, third)
    assert _wait(fresh_emulator, third)["numberRecordsFailed"] == 0, "the group is used once"


def test_a_job_that_fails_before_processing_lists_every_row_unprocessed_with_its_columns(
    fresh_emulator,
):
    rows = [{**row, "NoSuchField__c": "x"} for row in _tasks(30)]
    job = _open(fresh_emulator, data=_csv(rows))
    _close(fresh_emulator, job)
    info = _wait(fresh_emulator, job)
    assert info["state"] == "Failed" and "NoSuchField__c" in info["errorMessage"]
    results = _results(fresh_emulator, job)
    assert results["successfulResults"] == [] and results["failedResults"] == []
    assert results["unprocessedrecords"] == rows


def test_jobs_forced_to_fail_part_way_account_for_every_row_exactly_once(sf, fresh_emulator):
    fresh_emulator.set_faults(seed=4, failed_job_rate=1.0)
    rows = _tasks(1000)
    job = _open(fresh_emulator, data=_csv(rows))
    _close(fresh_emulator, job)
    info = _wait(fresh_emulator, job)
    assert info["state"] == "Failed" and "10 retries" in info["errorMessage"]
    results = _results(fresh_emulator, job)
    assert sorted(_accounted(results)) == [r[KEY] for r in rows]
    assert len(results["unprocessedrecords"]) > 0
    assert (len(results["successfulResults"]) + len(results["failedResults"])) % 200 == 0
    assert info["numberRecordsProcessed"] == 1000 - len(results["unprocessedrecords"])
    assert _held_keys(sf) == {r[KEY] for r in results["successfulResults"]}
    assert fresh_emulator.stats()["faults"]["injected"]["failed_job"] == 1


def test_a_share_of_jobs_fails_and_the_rest_complete(fresh_emulator):
    fresh_emulator.set_faults(seed=2, failed_job_rate=0.5)
    states = []
    for n in range(8):
        job = _open(fresh_emulator, data=_csv(_tasks(20, f"as1_share{n}_")))
        _close(fresh_emulator, job)
        states.append(_wait(fresh_emulator, job)["state"])
    assert set(states) == {"Failed", "JobComplete"}


def test_an_aborted_job_that_never_ran_lists_all_its_rows_unprocessed(fresh_emulator):
    rows = _tasks(10)
    job = _open(fresh_emulator, data=_csv(rows))
    assert _api(fresh_emulator, "PATCH", f"{JOBS}/{job}", json={"state": "Aborted"}).ok
    results = _results(fresh_emulator, job)
    assert results == {"successfulResults": [], "failedResults": [], "unprocessedrecords": rows}


def test_an_upload_over_the_base64_limit_is_refused_and_the_job_stays_open(fresh_emulator):
    assert fresh_emulator.stats()["settings"]["upload_limit_bytes"] == 150_000_000
    fresh_emulator.set_settings(upload_limit_bytes=1000)
    job = _open(fresh_emulator)
    too_big = b"Subject\n" + b"x" * 743  # 751 bytes: 1,004 once base64-encoded
    answer = _api(
        fresh_emulator,
        "PUT",
        f"{JOBS}/{job}/batches",
        data=too_big,
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status_code == 400
    assert answer.json() == [
        {
            "errorCode": "CLIENTINPUTERROR",
            "message": "Failed to read request. Exceeded max size limit of 1000",
        }
    ]
    assert _info(fresh_emulator, job)["state"] == "Open"
    fits = b"Subject\n" + b"x" * 742  # 750 bytes: exactly 1,000 once encoded
    put = _api(
        fresh_emulator,
        "PUT",
        f"{JOBS}/{job}/batches",
        data=fits,
        headers={"Content-Type": "text/csv"},
    )
    assert put.status_code == 201


def test_a_job_cut_short_by_a_restart_fails_and_reports_the_rest_unprocessed(
    emulator_factory, tmp_path
):
    emu = emulator_factory(tmp_path / "org", seed="small")
    emu.set_faults(chunk_seconds=0.3)
    uploaded = _tasks(450)
    job = _open(emu, data=_csv(uploaded))
    _close(emu, job)
    _wait(emu, job, until=lambda info: info["numberRecordsProcessed"] >= 200)
    emu.proc.kill()
    emu.proc.wait()
    again = emulator_factory(tmp_path / "org")
    info = _wait(again, job)
    assert info["state"] == "Failed" and "restarted" in info["errorMessage"]
    results = _results(again, job)
    assert sorted(_accounted(results)) == [r[KEY] for r in uploaded]
    assert len(results["unprocessedrecords"]) > 0


def test_an_upload_that_is_not_utf8_fails_the_job_and_comes_back_unprocessed(fresh_emulator):
    data = "Subject\nCaf\u00e9\n".encode("latin-1")
    job = _open(fresh_emulator, operation="insert", data=data)
    _close(fresh_emulator, job)
    info = _wait(fresh_emulator, job)
    assert info["state"] == "Failed" and "UTF-8" in info["errorMessage"]
    answer = _api(fresh_emulator, "GET", f"{JOBS}/{job}/unprocessedrecords")
    assert answer.content == data
