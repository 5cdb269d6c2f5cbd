"""mirror.py against the emulator (full pull, incremental refresh, deletions seen) and
against a hand-written client for what the emulator never sends (a flag that is no flag)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from canned_salesforce import ONE_CONTACT, CannedClient, RecordingClient, contact_row
from deltalake import DeltaTable

from activity_sync.crm import CrmError, read_crm
from activity_sync.errors import ActivitySyncError
from activity_sync.mirror import (
    MIRRORED,
    REFRESHED_AT,
    MirrorError,
    current_versions,
    read_mirror,
    refresh_crm,
    refresh_object,
    versions_for_hour,
)
from activity_sync.salesforce import SalesforceClient


def held(folder, name: str, version: int | None = None) -> pd.DataFrame:
    """The mirror's rows of one object, at a version (default: the latest)."""
    return DeltaTable(str(folder / name), version=version).to_pandas()


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
    mirror = held(tmp_path, "Contact").set_index("Id")
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
    assert gone not in set(held(tmp_path, "Contact")["Id"])


def test_users_have_no_deleted_flag_and_are_refreshed_all_the_same(client, tmp_path):
    refresh_object(client, "User", tmp_path)
    assert refresh_object(client, "User", tmp_path)["mode"] == "incremental"
    assert "IsDeleted" not in held(tmp_path, "User").columns


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
    leads = held(tmp_path, "Lead")
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
    assert not (tmp_path / "User").exists()


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


def test_the_refresh_time_is_kept_in_the_mirror_table_s_own_history(tmp_path):
    refresh_object(RecordingClient(ONE_CONTACT), "Contact", tmp_path, now=T0)
    latest = DeltaTable(str(tmp_path / "Contact")).history(1)[0]
    assert pd.Timestamp(latest[REFRESHED_AT]) == T0


def test_a_parquet_mirror_of_the_version_before_delta_goes_by_its_newest_row(tmp_path):
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
    assert held(tmp_path, "Contact")["Id"].tolist() == ["0030001"]


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
    assert gone not in set(held(tmp_path, "Contact")["Id"])


def test_every_refresh_that_changed_something_is_a_version_that_can_be_read_back(tmp_path):
    """Time travel: the CRM as the mirror held it at any version (item 1 of issue 10)."""
    refresh_object(
        RecordingClient(contact_row("a@x.io", "2026-03-01T00:00:00Z")), "Contact", tmp_path
    )
    moved = RecordingClient(contact_row("b@x.io", "2026-03-02T00:00:00Z"))
    stats = refresh_object(moved, "Contact", tmp_path)
    assert stats["mode"] == "incremental" and stats["version"] == 1
    assert held(tmp_path, "Contact", 0)["Email"].tolist() == ["a@x.io"]
    assert held(tmp_path, "Contact", 1)["Email"].tolist() == ["b@x.io"]
    gone = RecordingClient(contact_row("b@x.io", "2026-03-03T00:00:00Z", deleted=True))
    assert refresh_object(gone, "Contact", tmp_path)["rows"] == 0
    assert held(tmp_path, "Contact", 1)["Email"].tolist() == ["b@x.io"]


def test_an_hour_that_never_ran_reads_the_first_version_refreshed_after_it_ended(tmp_path):
    """Versions at 12:05 and 13:05: the hour 12-13 gets the 13:05 one (the CRM as it stood
    at 13:00, nearest after), 14-15 the latest, an hour before the history the oldest."""
    t1, t2 = T0 + timedelta(minutes=5), T0 + timedelta(hours=1, minutes=5)
    refresh_crm(RecordingClient(contact_row("a@x.io", "2026-03-01T00:00:00Z")), tmp_path, now=t1)
    refresh_object(
        RecordingClient(contact_row("b@x.io", "2026-03-01T13:00:00Z")), "Contact", tmp_path, now=t2
    )
    assert versions_for_hour(tmp_path, T0 + timedelta(hours=1))["Contact"] == 1
    assert versions_for_hour(tmp_path, T0 + timedelta(hours=3))["Contact"] == 1
    assert versions_for_hour(tmp_path, T0 - timedelta(days=2))["Contact"] == 0
    assert versions_for_hour(tmp_path, T0)["Contact"] == 0
    old = read_mirror(tmp_path, versions_for_hour(tmp_path, T0))
    assert old.contacts["Email"].tolist() == ["a@x.io"]


def test_a_refresh_that_found_nothing_new_writes_no_version(tmp_path):
    client = RecordingClient(contact_row("a@x.io", "2026-03-01T00:00:00Z"))
    refresh_object(client, "Contact", tmp_path, now=T0)
    client.rows = client.rows.iloc[:0]
    assert refresh_object(client, "Contact", tmp_path, now=T0)["version"] == 0


def test_a_crm_folder_of_snapshot_files_is_read_as_it_is_with_no_versions_to_pin(tmp_path):
    """An org whose CRM is exported by hand (one file per object) has no history: an hour
    plans against the files, and nothing is pinned."""
    for sobject, columns in MIRRORED.items():
        pd.DataFrame({c: [] for c in columns}).to_csv(tmp_path / f"{sobject}.csv", index=False)
    ONE_CONTACT.drop(columns=["IsDeleted", "SystemModstamp"]).to_csv(
        tmp_path / "Contact.csv", index=False
    )
    assert current_versions(tmp_path) == {} == versions_for_hour(tmp_path, T0)
    assert read_mirror(tmp_path, {}).contacts["Email"].tolist() == ["kim@prospect.io"]


def test_a_mirror_refreshed_half_way_is_refused_naming_the_missing_tables(tmp_path):
    refresh_object(RecordingClient(ONE_CONTACT), "Contact", tmp_path, now=T0)
    with pytest.raises(MirrorError, match="no table for"):
        read_mirror(tmp_path)
