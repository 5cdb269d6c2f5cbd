"""Hand-written Salesforce clients that answer every query with canned rows, as a Bulk API
2.0 query job's CSV gives them, for the CRM mirror's tests (test_mirror.py,
test_lake_upkeep.py)."""

from __future__ import annotations

import pandas as pd


class CannedClient:
    """Answers every query with the same rows, as a Bulk API 2.0 query job's CSV gives them:
    every value a string, null as an empty cell.

    Bulk API 2.0 query results: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm
    """

    def __init__(self, rows: pd.DataFrame) -> None:
        self.rows = rows

    def bulk_query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        return self.rows

    def query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        return self.rows


class RecordingClient(CannedClient):
    """A CannedClient that notes which kind of query each refresh made."""

    def __init__(self, rows: pd.DataFrame) -> None:
        super().__init__(rows)
        self.calls: list[tuple[str, bool]] = []

    def bulk_query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        self.calls.append(("bulk", include_deleted))
        return self.rows

    def query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        self.calls.append(("rest", include_deleted))
        return self.rows


ONE_CONTACT = pd.DataFrame(
    {
        "Id": ["0030001"],
        "Email": ["kim@prospect.io"],
        "AccountId": [""],
        "LastModifiedDate": ["2026-01-01T00:00:00.000+0000"],
        "SystemModstamp": ["2026-01-01T00:00:00.000+0000"],
        "IsDeleted": ["false"],
    }
)


def contact_row(email: str, stamp: str, *, deleted: bool = False) -> pd.DataFrame:
    return ONE_CONTACT.assign(
        Email=email, SystemModstamp=stamp, IsDeleted="true" if deleted else "false"
    )
