"""Org settings: the documented defaults (docs/settings.md), and errors that name the offending key."""

from __future__ import annotations

import json

import pytest

from activity_sync.errors import ActivitySyncError
from activity_sync.settings import Settings, SettingsError, load_settings, parse_settings
from activity_sync.tenants import TenantConfigError, load_orgs


def test_missing_keys_take_the_documented_defaults():
    settings = parse_settings({"org_id": "acme"})
    assert settings.to_dict() == {
        "org_id": "acme",
        "shared_activities": True,
        "sync_to_opportunities": True,
        "opportunity_match": "account",
        "open_opportunities_only": False,
        "owned_opportunities_only": False,
        "exclusions": [],
        "exclude_system_addresses": True,
        "sync_bcc": False,
        "timezone": "UTC",
        "meetings_as_events": True,
    }


def test_every_key_given_is_taken():
    raw = {
        "org_id": "acme",
        "shared_activities": False,
        "sync_to_opportunities": False,
        "opportunity_match": "contact_role",
        "open_opportunities_only": True,
        "owned_opportunities_only": True,
        "exclusions": ["ceo@acme.com"],
        "exclude_system_addresses": False,
        "sync_bcc": True,
        "timezone": "Europe/Berlin",
        "meetings_as_events": False,
    }
    assert parse_settings(raw).to_dict() == raw


def test_an_unknown_key_is_an_error_naming_it():
    with pytest.raises(SettingsError, match="'sync_cc'") as error:
        parse_settings({"org_id": "acme", "sync_cc": True})
    assert isinstance(error.value, ActivitySyncError)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("shared_activities", 1, "bool"),
        ("sync_bcc", "yes", "bool"),
        ("org_id", 7, "str"),
        ("exclusions", "competitor.com", "list"),
        ("timezone", None, "str"),
        ("meetings_as_events", "true", "bool"),
    ],
)
def test_a_wrong_type_is_an_error_naming_the_key_and_the_type(key, value, expected):
    with pytest.raises(SettingsError, match=f"'{key}' must be {expected}"):
        parse_settings({"org_id": "acme", key: value})


def test_org_id_is_required_and_not_blank():
    for raw in ({}, {"org_id": "  "}):
        with pytest.raises(SettingsError, match="'org_id' is required"):
            parse_settings(raw)


def test_opportunity_match_is_account_or_contact_role():
    with pytest.raises(SettingsError, match="'opportunity_match'"):
        parse_settings({"org_id": "acme", "opportunity_match": "owner"})


def test_an_empty_exclusion_is_an_error():
    with pytest.raises(SettingsError, match="'exclusions'"):
        parse_settings({"org_id": "acme", "exclusions": ["competitor.com", " "]})


@pytest.mark.parametrize("zone", ["Mars/Olympus", "America", "../etc/passwd", ""])
def test_a_time_zone_that_is_none_is_an_error_naming_the_key(zone):
    with pytest.raises(SettingsError, match="'timezone'"):
        parse_settings({"org_id": "acme", "timezone": zone})


def test_exclusions_are_trimmed_lower_cased_and_kept_once():
    settings = parse_settings(
        {"org_id": "acme", "exclusions": [" Competitor.COM", "competitor.com", "CEO@acme.com"]}
    )
    assert settings.exclusions == ("competitor.com", "ceo@acme.com")
    assert settings.excluded_domains == {"competitor.com"}
    assert settings.excluded_addresses == {"ceo@acme.com"}


def test_settings_built_in_code_normalise_their_exclusions_too():
    settings = Settings(org_id="acme", exclusions=["  Rival.io ", "Boss@Acme.com"])
    assert settings.exclusions == ("rival.io", "boss@acme.com")


def test_load_settings_reads_a_json_file(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"org_id": "acme", "sync_bcc": True}))
    assert load_settings(path) == Settings(org_id="acme", sync_bcc=True)


def test_load_settings_names_a_file_that_is_missing_or_not_json(tmp_path):
    with pytest.raises(SettingsError, match="missing.json cannot be read"):
        load_settings(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{org_id: acme}")
    with pytest.raises(SettingsError, match="bad.json is not valid JSON"):
        load_settings(bad)


def test_settings_that_are_not_an_object_are_an_error():
    with pytest.raises(SettingsError, match="JSON object"):
        parse_settings(["acme"])


def test_a_settings_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows editors (Notepad, Excel's "UTF-8" export) start a file with U+FEFF."""
    path = tmp_path / "settings.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"org_id": "acme"}).encode())
    assert load_settings(path) == Settings(org_id="acme")


def test_an_orgs_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "orgs.yaml"
    text = "version: 1\norgs:\n  - org_id: acme\n    salesforce_conn_id: salesforce_acme\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert [org.org_id for org in load_orgs(path)] == ["acme"]


def test_an_orgs_file_that_is_not_utf8_is_an_error_naming_it(tmp_path):
    path = tmp_path / "orgs.yaml"
    path.write_bytes(b"version: 1\norgs:\n  - org_id: caf\xe9\n")
    with pytest.raises(TenantConfigError, match="cannot read orgs file .*orgs.yaml"):
        load_orgs(path)


def test_an_idn_exclusion_is_kept_in_one_form_whichever_form_it_was_given_in():
    settings = parse_settings(
        {
            "org_id": "acme",
            "exclusions": ["XN--EXMPLE-CUA.COM", "exämple.com", "Zoë@xn--Exmple-cua.com"],
        }
    )
    assert settings.exclusions == ("exämple.com", "zoë@exämple.com")
