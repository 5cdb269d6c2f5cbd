"""Org settings (the contract in docs/settings.md): defaults for missing keys, errors that name the key."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from activity_sync.errors import ActivitySyncError
from activity_sync.schema import canonical_domain, canonical_email


class SettingsError(ActivitySyncError, ValueError):
    """Unusable org settings; the message names the offending key."""


@dataclass(frozen=True)
class Settings:
    """One org's settings; build them with :func:`parse_settings`, which names a bad key.

    Attributes:
        org_id: the org they belong to; events of another org are rejected (``wrong_org``).
        shared_activities: plan shared Tasks while Salesforce allows them (R1).
        sync_to_opportunities: relate Tasks to Opportunities (R8).
        opportunity_match: ``"account"`` or ``"contact_role"``: how Opportunities are found.
        open_opportunities_only, owned_opportunities_only: narrow those Opportunities (R8).
        exclusions: addresses, or domains with their subdomains, never synced (R4); kept
            trimmed and lower-case.
        exclude_system_addresses: treat noreply@, postmaster@ and the like as excluded.
        sync_bcc: put Bcc recipients on Tasks (R3).
        timezone: the IANA zone in which a Task's ActivityDate (and an all-day Salesforce
            Event's days) are taken.
        meetings_as_events: in shared mode, plan a meeting as Salesforce Events shared by
            its attendees (R14) instead of one Task per attendee.
    """

    org_id: str
    shared_activities: bool = True
    sync_to_opportunities: bool = True
    opportunity_match: str = "account"
    open_opportunities_only: bool = False
    owned_opportunities_only: bool = False
    exclusions: tuple[str, ...] = field(default_factory=tuple)
    exclude_system_addresses: bool = True
    sync_bcc: bool = False
    timezone: str = "UTC"
    meetings_as_events: bool = True

    def __post_init__(self) -> None:
        # Exclusions are compared in the canonical form of addresses (R3), however the
        # Settings were made: parsed from JSON or built directly in code.
        normalised = tuple(dict.fromkeys(_canonical_exclusion(e) for e in self.exclusions))
        object.__setattr__(self, "exclusions", normalised)

    @property
    def excluded_addresses(self) -> frozenset[str]:
        return frozenset(e for e in self.exclusions if "@" in e)

    @property
    def excluded_domains(self) -> frozenset[str]:
        return frozenset(e for e in self.exclusions if "@" not in e)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exclusions"] = list(self.exclusions)
        return d


def _canonical_exclusion(exclusion: str) -> str:
    """An excluded address, or domain, as addresses are compared: trimmed, lower-cased, an
    internationalised domain in one form whether given in Unicode or as "xn--"."""
    text = exclusion.strip().lower()
    return canonical_email(text) if "@" in text else canonical_domain(text)


_TYPES: dict[str, type] = {
    "org_id": str,
    "shared_activities": bool,
    "sync_to_opportunities": bool,
    "opportunity_match": str,
    "open_opportunities_only": bool,
    "owned_opportunities_only": bool,
    "exclusions": list,
    "exclude_system_addresses": bool,
    "sync_bcc": bool,
    "timezone": str,
    "meetings_as_events": bool,
}
assert set(_TYPES) == {f.name for f in fields(Settings)}


def parse_settings(raw: Any) -> Settings:
    """Validate a settings mapping; missing keys take the defaults of :class:`Settings`."""
    if not isinstance(raw, dict):
        raise SettingsError(f"settings must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_TYPES))
    if unknown:
        raise SettingsError(f"unknown settings key {unknown[0]!r}")
    for key, value in raw.items():
        expected = _TYPES[key]
        # bool is an int subclass and an int is not a bool: check exactly.
        if type(value) is not expected:
            raise SettingsError(
                f"settings key {key!r} must be {expected.__name__}, got {type(value).__name__}"
            )
    if "org_id" not in raw or not raw["org_id"].strip():
        raise SettingsError("settings key 'org_id' is required")
    if raw.get("opportunity_match", "account") not in ("account", "contact_role"):
        raise SettingsError(
            "settings key 'opportunity_match' must be 'account' or 'contact_role', "
            f"got {raw['opportunity_match']!r}"
        )
    exclusions = raw.get("exclusions", [])
    for item in exclusions:
        if not isinstance(item, str) or not item.strip():
            raise SettingsError(
                f"settings key 'exclusions' holds a non-string or empty entry: {item!r}"
            )
    tz = raw.get("timezone", "UTC")
    # A folder of the tz database ("America") raises IsADirectoryError, an OSError.
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise SettingsError(f"settings key 'timezone' is not a known time zone: {tz!r}") from exc
    return Settings(**{**raw, "exclusions": tuple(exclusions)})


def load_settings(path: str | Path) -> Settings:
    """:func:`parse_settings` of a JSON file; an unreadable file raises :class:`SettingsError`.

    A UTF-8 byte order mark, as some Windows editors save one, is skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path} cannot be read: {exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid JSON: {exc}") from exc
    return parse_settings(raw)
