"""tenants.py: the orgs file, with errors that name the org and the key."""

from __future__ import annotations

import pytest

from activity_sync.errors import ActivitySyncError
from activity_sync.tenants import (
    DEFAULT_CONFIG,
    DEFAULT_EXTERNAL_ID_FIELD,
    DEFAULT_SALESFORCE_CONCURRENCY,
    DEFAULT_SHARD_SIZE,
    Org,
    OrgsFile,
    TenantConfigError,
    load_orgs,
    load_orgs_file,
)


def write(tmp_path, text: str):
    path = tmp_path / "orgs.yaml"
    path.write_text(text)
    return path


def test_the_shipped_config_loads_and_names_the_demo_org():
    orgs = load_orgs(DEFAULT_CONFIG)
    assert [o.org_id for o in orgs] == ["demo"]
    assert orgs[0].settings.org_id == "demo"


def test_missing_settings_take_the_design_defaults(tmp_path):
    (org,) = load_orgs(
        write(tmp_path, "version: 1\norgs:\n  - {org_id: a, salesforce_conn_id: sf_a}\n")
    )
    assert org.settings.shared_activities is True
    assert org.settings.sync_bcc is False
    assert org.api_budget_share == 0.7
    assert org.external_id_field == DEFAULT_EXTERNAL_ID_FIELD
    assert org.salesforce_concurrency == DEFAULT_SALESFORCE_CONCURRENCY == 2
    assert org.dedicated is False


def test_an_org_round_trips_through_the_dict_that_travels_in_xcom(tmp_path):
    (org,) = load_orgs(
        write(
            tmp_path,
            "version: 1\norgs:\n  - org_id: a\n    salesforce_conn_id: sf_a\n"
            "    settings: {exclusions: [x.com], timezone: Asia/Tokyo}\n"
            "    salesforce_concurrency: 3\n    dedicated: true\n",
        )
    )
    assert Org.from_dict(org.to_dict()) == org


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{org_id: a}", "'salesforce_conn_id' is required"),
        ("{org_id: a, salesforce_conn_id: s, colour: red}", "unknown key 'colour'"),
        (
            "{org_id: a, salesforce_conn_id: s, settings: {sync_bcc: 'yes'}}",
            "'sync_bcc' must be bool",
        ),
        (
            "{org_id: a, salesforce_conn_id: s, settings: {org_id: b}}",
            "settings.org_id 'b' differs",
        ),
        ("{org_id: a, salesforce_conn_id: s, api_budget_share: 1.5}", "'api_budget_share'"),
        ("{org_id: a, salesforce_conn_id: s, salesforce_concurrency: 0}", "at least 1"),
        ("{org_id: a, salesforce_conn_id: s, salesforce_concurrency: 1.5}", "'salesforce_concurr"),
        ("{org_id: a, salesforce_conn_id: s, salesforce_concurrency: true}", "'salesforce_concur"),
        ("{org_id: a, salesforce_conn_id: s, dedicated: 'yes'}", "'dedicated' must be true"),
    ],
)
def test_a_bad_entry_is_an_error_naming_the_org_and_key(tmp_path, entry, message):
    with pytest.raises(TenantConfigError, match="org 'a'") as err:
        load_orgs(write(tmp_path, f"version: 1\norgs:\n  - {entry}\n"))
    assert message in str(err.value)
    assert isinstance(err.value, ActivitySyncError)


def test_an_org_listed_twice_is_an_error(tmp_path):
    entry = "  - {org_id: a, salesforce_conn_id: s}\n"
    with pytest.raises(TenantConfigError, match="listed twice"):
        load_orgs(write(tmp_path, "version: 1\norgs:\n" + entry * 2))


def test_a_file_without_version_is_rejected(tmp_path):
    with pytest.raises(TenantConfigError, match="version: 1"):
        load_orgs(write(tmp_path, "orgs: []\n"))


def test_the_shard_size_is_read_from_the_file_with_a_default(tmp_path):
    entry = "orgs:\n  - {org_id: a, salesforce_conn_id: s}\n"
    assert load_orgs_file(write(tmp_path, "version: 1\n" + entry)).shard_size == DEFAULT_SHARD_SIZE
    config = load_orgs_file(write(tmp_path, "version: 1\nshard_size: 10\n" + entry))
    assert config == OrgsFile(orgs=load_orgs(tmp_path / "orgs.yaml"), shard_size=10)


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ("shard_size: 0\n", "'shard_size' must be a whole number of at least 1"),
        ("shard_size: ten\n", "'shard_size' must be a whole number of at least 1"),
        ("shards: 3\n", "unknown top-level key 'shards'"),
    ],
)
def test_a_bad_top_level_key_is_an_error_naming_the_file_and_key(tmp_path, top, message):
    path = write(tmp_path, "version: 1\n" + top + "orgs: []\n")
    with pytest.raises(TenantConfigError, match=message) as err:
        load_orgs_file(path)
    assert str(path) in str(err.value)
