"""The daily API allowance: /limits, the Sforce-Limit-Info header, and running out."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceRefusedRequest


def test_every_api_call_decrements_daily_api_requests(sf):
    before = sf.limits()["DailyApiRequests"]
    sf.query("SELECT Id FROM Account LIMIT 1")
    sf.bulk2.Account.insert(records=[{"Name": "Counted"}], wait=0.05)
    after = sf.limits()["DailyApiRequests"]
    assert before["Max"] == after["Max"] == 100_000
    # query, create job, upload, close, at least one poll, final get, /limits itself
    assert before["Remaining"] - after["Remaining"] >= 7


def test_limits_carry_the_bulk_allocations(sf):
    sf.bulk2.Account.insert(records=[{"Name": "One batch"}], wait=0.05)
    list(sf.bulk2.Account.query("SELECT Id FROM Account", wait=0.05))
    limits = sf.limits()
    assert limits["DailyBulkApiBatches"]["Max"] - limits["DailyBulkApiBatches"]["Remaining"] == 1
    assert limits["DailyBulkV2QueryJobs"]["Max"] - limits["DailyBulkV2QueryJobs"]["Remaining"] == 1


def test_when_the_allowance_is_spent_calls_are_refused_with_request_limit_exceeded(
    sf, fresh_emulator
):
    fresh_emulator.set_settings(api_limit=3)
    for _ in range(3):
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert sf.api_usage["api-usage"].used == 3
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert caught.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    stats = fresh_emulator.stats()["api"]
    assert stats["api_calls"] == 3 and stats["refused"] == {"limit_exhausted": 1}


def test_admin_calls_are_not_counted(sf, fresh_emulator):
    for _ in range(5):
        fresh_emulator.stats()
    sf.query("SELECT Id FROM Account LIMIT 1")
    assert sf.api_usage["api-usage"].used == 1


def test_stats_count_calls_by_method_and_route(sf, fresh_emulator):
    sf.query("SELECT Id FROM Account LIMIT 1")
    sf.Account.create({"Name": "Routed"})
    by_route = fresh_emulator.stats()["api"]["by_route"]
    assert by_route == {
        "GET /services/data/{version}/query": 1,
        "POST /services/data/{version}/sobjects/{object}": 1,
    }
