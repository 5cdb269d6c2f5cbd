"""mirror.py against the emulator: full pull, incremental refresh, deletions seen."""

from __future__ import annotations

import pandas as pd
import pytest

from activity_sync.crm import read_crm
from activity_sync.mirror import MIRRORED, refresh_crm, refresh_object
from activity_sync.salesforce import SalesforceClient


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
