"""mirror.py against the emulator (full pull, incremental refresh, deletions seen) and
against a hand-written client for what the emulator never sends (a flag that is no flag)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest

from activity_sync.crm import CrmError, read_crm
from activity_sync.errors import ActivitySyncError
from activity_sync.mirror import MIRRORED, REFRESHED_AT, refresh_crm, refresh_object
from activity_sync.salesforce import SalesforceClient


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


@pytest.fixture
def client(fresh_emulator) -> SalesforceClient:
    return SalesforceClient(fresh_emulator.simple_salesforce, poll_wait=0.02)


def test_a_first_refresh_pulls_every_object_through_bulk_and_the_planner_can_read_it(
    client, tmp_path
):
    stats = refresh_crm(client, tmp_path)
    assert set(stats) == set(MIRRORED)
    assert {s["mode"] for s in stats.values()} == {"full"}
    assert client.bulk_jobs == len(MIRRORED)
    crm = read_crm(tmp_path)
    assert len(crm.contacts) == stats["Contact"]["rows"] > 0
    assert crm.leads["IsConverted"].dtype == bool


def test_an_incremental_refresh_fetches_only_what_changed_since_the_newest_row(
    client, fresh_emulator, tmp_path
):
    refresh_object(client, "Contact", tmp_path)
    sf = fresh_emulator.simple_salesforce()
    contact = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
    sf.Contact.update(contact, {"Email": "moved@example.org"})
    new = sf.Contact.create({"LastName": "Newman", "Email": "new@example.org"})["id"]
    stats = refresh_object(client, "Contact", tmp_path)
    assert stats["mode"] == "incremental"
    assert stats["fetched"] < 10
    mirror = pd.read_parquet(tmp_path / "Contact.parquet").set_index("Id")
    assert mirror.loc[contact, "Email"] == "moved@example.org"
    assert new in mirror.index
    assert not mirror.index.duplicated().any()


def test_a_deleted_record_leaves_the_mirror(client, fresh_emulator, tmp_path):
    refresh_object(client, "Contact", tmp_path)
    sf = fresh_emulator.simple_salesforce()
    gone = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
    sf.Contact.delete(gone)
    stats = refresh_object(client, "Contact", tmp_path)
    assert stats["deleted"] == 1
    assert gone not in set(pd.read_parquet(tmp_path / "Contact.parquet")["Id"])


def test_users_have_no_deleted_flag_and_are_refreshed_all_the_same(client, tmp_path):
    refresh_object(client, "User", tmp_path)
    assert refresh_object(client, "User", tmp_path)["mode"] == "incremental"
    assert "IsDeleted" not in pd.read_parquet(tmp_path / "User.parquet").columns


def test_bulk_csv_rows_are_typed_as_the_crm_reader_types_them_with_empty_cells_as_null(tmp_path):
    rows = pd.DataFrame(
        {
            "Id": ["00Q0001", "00Q0002"],
            "Email": ["hal@prospect.io", ""],
            "IsConverted": ["true", "false"],
            "LastModifiedDate": ["2024-01-01T00:00:00.000+0000", ""],
            "SystemModstamp": ["2024-01-01T00:00:00.000+0000", "2024-01-02T00:00:00.000+0000"],
            "IsDeleted": ["false", "false"],
        }
    )
    refresh_object(CannedClient(rows), "Lead", tmp_path)
    leads = pd.read_parquet(tmp_path / "Lead.parquet")
    assert leads["IsConverted"].dtype == bool
    assert leads["IsConverted"].tolist() == [True, False]
    assert leads["Email"].isna().tolist() == [False, True]
    assert leads["LastModifiedDate"].isna().tolist() == [False, True]


def test_a_flag_from_salesforce_that_is_no_flag_is_refused_naming_object_column_value(tmp_path):
    """The mirror's half of one rule (the reader's is in test_crm.py): it once read as False."""
    rows = pd.DataFrame(
        {
            "Id": ["0050001"],
            "Email": ["rep@acme.com"],
            "IsActive": ["maybe"],
            "SystemModstamp": ["2024-01-01T00:00:00.000+0000"],
        }
    )
    with pytest.raises(CrmError, match="User column 'IsActive' holds 'maybe'") as error:
        refresh_object(CannedClient(rows), "User", tmp_path)
    assert isinstance(error.value, ActivitySyncError)
    assert not (tmp_path / "User.parquet").exists()


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
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("later", "mode"),
    [(timedelta(days=1), "incremental"), (timedelta(days=13, hours=23), "incremental")]
    + [(timedelta(days=14, minutes=1), "full"), (timedelta(days=40), "full")],
)
def test_a_mirror_not_refreshed_for_longer_than_the_recycle_bin_keeps_deletions_is_pulled_in_full(
    tmp_path, later, mode
):
    """Salesforce empties the Recycle Bin after 15 days; queryAll then no longer shows the
    deletion (https://help.salesforce.com/s/articleView?id=sf.home_delete.htm)."""
    client = RecordingClient(ONE_CONTACT)
    refresh_object(client, "Contact", tmp_path, now=T0)
    stats = refresh_object(client, "Contact", tmp_path, now=T0 + later)
    assert stats["mode"] == mode
    assert client.calls[-1] == ("bulk" if mode == "full" else "rest", True)
    if mode == "full":
        assert "Recycle Bin" in stats["reason"]


def test_the_refresh_time_is_kept_in_the_mirror_file_itself(tmp_path):
    refresh_object(RecordingClient(ONE_CONTACT), "Contact", tmp_path, now=T0)
    metadata = pq.read_schema(tmp_path / "Contact.parquet").metadata
    assert pd.Timestamp(metadata[REFRESHED_AT].decode()) == T0


def test_a_mirror_written_before_refresh_times_were_kept_goes_by_its_newest_row(tmp_path):
    ONE_CONTACT.drop(columns="IsDeleted").to_parquet(tmp_path / "Contact.parquet")
    client = RecordingClient(ONE_CONTACT)
    stats = refresh_object(client, "Contact", tmp_path, now=T0)  # 59 days after the row
    assert stats["mode"] == "full"
    assert refresh_object(client, "Contact", tmp_path, now=T0)["mode"] == "incremental"


def test_a_full_pull_drops_rows_deleted_meanwhile_that_queryall_no_longer_returns(tmp_path):
    two = pd.concat([ONE_CONTACT, ONE_CONTACT.assign(Id="0030002")], ignore_index=True)
    refresh_object(RecordingClient(two), "Contact", tmp_path, now=T0)
    # 0030002 was deleted and purged from the Recycle Bin: no query returns it any more.
    refresh_object(RecordingClient(ONE_CONTACT), "Contact", tmp_path, now=T0 + timedelta(days=20))
    assert pd.read_parquet(tmp_path / "Contact.parquet")["Id"].tolist() == ["0030001"]


def test_a_deletion_purged_from_the_recycle_bin_leaves_a_mirror_not_refreshed_for_16_days(
    client, fresh_emulator, tmp_path
):
    """Against the emulator's clock: the Contact deleted after the last refresh is purged
    after 15 days, so only a full pull can notice it is gone."""
    now = datetime.now(UTC)
    refresh_object(client, "Contact", tmp_path, now=now)
    sf = fresh_emulator.simple_salesforce()
    gone = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
    sf.Contact.delete(gone)
    later = now + timedelta(days=16)
    fresh_emulator.set_settings(today=later.date().isoformat())
    assert client.query(f"SELECT Id FROM Contact WHERE Id = '{gone}'", include_deleted=True).empty
    stats = refresh_object(client, "Contact", tmp_path, now=later)
    assert stats["mode"] == "full"
    assert gone not in set(pd.read_parquet(tmp_path / "Contact.parquet")["Id"])
