"""SOQL over REST: pages, cursors, deleted rows, errors, and escaping done the safe way."""

from __future__ import annotations

import pytest
from simple_salesforce import format_soql
from simple_salesforce.exceptions import SalesforceMalformedRequest


def _add_contacts(sf, n: int, prefix: str = "Page") -> None:
    result = sf.bulk2.Contact.insert(
        records=[
            {"LastName": f"{prefix}{i:05d}", "Email": f"p{i}@paging.example"} for i in range(n)
        ],
        wait=0.05,
    )
    assert result[0]["numberRecordsFailed"] == 0


def test_query_all_follows_next_records_url_past_two_thousand_rows(sf):
    _add_contacts(sf, 2_500)
    first = sf.query("SELECT Id, LastName FROM Contact WHERE Email LIKE '%@paging.example'")
    assert first["totalSize"] == 2_500 and first["done"] is False
    assert len(first["records"]) == 2_000
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    everything = sf.query_all(
        "SELECT Id, LastName FROM Contact WHERE Email LIKE '%@paging.example' ORDER BY LastName"
    )
    names = [r["LastName"] for r in everything["records"]]
    assert everything["done"] and len(names) == 2_500
    assert names == sorted(names) and len(set(names)) == 2_500


def test_batch_size_header_sets_the_page_size(sf, fresh_emulator):
    session = fresh_emulator.session()
    response = session.get(
        f"{fresh_emulator.info.instance_url}/services/data/v59.0/query",
        params={"q": "SELECT Id FROM Contact"},
        headers={
            "Authorization": f"Bearer {fresh_emulator.info.access_token}",
            "Sforce-Query-Options": "batchSize=250",
        },
    )
    body = response.json()
    assert len(body["records"]) == 250 and body["totalSize"] == 400 and not body["done"]


def test_a_stale_query_locator_is_invalid(sf):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query_more("01gdeadbeef-2000")
    assert caught.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_count_query_returns_total_size_and_no_records(sf):
    result = sf.query("SELECT COUNT() FROM Contact")
    assert result == {"totalSize": 400, "done": True, "records": []}


def test_query_all_sees_deleted_rows_and_query_does_not(sf):
    contact = sf.Contact.create({"LastName": "Gone", "Email": "gone@example.com"})["id"]
    sf.Contact.delete(contact)
    soql = "SELECT Id, IsDeleted FROM Contact WHERE Email = 'gone@example.com'"
    assert sf.query(soql)["totalSize"] == 0
    deleted = sf.query_all(soql, include_deleted=True)["records"]
    assert [(r["Id"], r["IsDeleted"]) for r in deleted] == [(contact, True)]


def test_values_types_come_back_as_json_types(sf):
    account = sf.Account.create({"Name": "Typed", "NumberOfEmployees": 12, "AnnualRevenue": 1.5})
    opp = sf.Opportunity.create(
        {
            "Name": "Deal",
            "AccountId": account["id"],
            "StageName": "Closed Won",
            "CloseDate": "2025-03-01",
            "Amount": 1000,
        }
    )
    record = sf.query(
        f"SELECT NumberOfEmployees, AnnualRevenue FROM Account WHERE Id = '{account['id']}'"
    )["records"][0]
    assert record["NumberOfEmployees"] == 12 and record["AnnualRevenue"] == 1.5
    deal = sf.query(
        f"SELECT IsClosed, IsWon, CloseDate, Amount, CreatedDate FROM Opportunity "
        f"WHERE Id = '{opp['id']}'"
    )["records"][0]
    assert deal["IsClosed"] is True and deal["IsWon"] is True and deal["CloseDate"] == "2025-03-01"
    assert deal["Amount"] == 1000
    assert deal["CreatedDate"].endswith("+0000") and deal["CreatedDate"][10] == "T"


@pytest.mark.parametrize(
    "email",
    ["o'brien@x.com", "back\\slash@x.com", 'quote"d@x.com', "under_score%@x.com"],
)
def test_awkward_values_round_trip_through_format_soql(sf, email):
    name = "D'Arcy \\ O\"Neil"
    contact = sf.Contact.create({"LastName": name, "Title": email})["id"]
    found = sf.query(format_soql("SELECT Id, LastName FROM Contact WHERE Title = {}", email))
    assert [(r["Id"], r["LastName"]) for r in found["records"]] == [(contact, name)]
    by_name = sf.query(format_soql("SELECT Id FROM Contact WHERE LastName IN {}", [name, "zz"]))
    assert [r["Id"] for r in by_name["records"]] == [contact]


def test_an_apostrophe_email_is_a_valid_contact_email(sf):
    contact = sf.Contact.create({"LastName": "OBrien", "Email": "o'brien@x.com"})["id"]
    found = sf.query(format_soql("SELECT Id FROM Contact WHERE Email = {}", "O'Brien@X.com"))
    assert [r["Id"] for r in found["records"]] == [contact]


def test_a_naive_unescaped_query_is_rejected_not_executed(sf):
    sf.Contact.create({"LastName": "OBrien", "Email": "o'brien@x.com"})
    before = sf.query("SELECT COUNT() FROM Contact")["totalSize"]
    for naive in (
        "SELECT Id FROM Contact WHERE Email = 'o'brien@x.com'",
        "SELECT Id FROM Contact WHERE Email = 'x' OR Email != '' OR Email = 'o'brien@x.com'",
        "SELECT Id FROM Contact WHERE LastName = 'back\\slash'",
    ):
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sf.query(naive)
        assert caught.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == before


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id, Colour__c FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Widget", "INVALID_TYPE"),
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY"),
    ],
)
def test_bad_soql_gets_salesforce_error_codes(sf, soql, code):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(soql)
    assert caught.value.content[0]["errorCode"] == code


def test_task_relation_and_shared_fields_are_not_queryable_while_shared_activities_is_off(
    sf, fresh_emulator
):
    fresh_emulator.set_settings(shared_activities=False)
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM TaskRelation")
    assert caught.value.content[0]["errorCode"] == "INVALID_TYPE"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id, WhoCount FROM Task")
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"
