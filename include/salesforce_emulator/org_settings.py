"""The org's switchable settings and the admin endpoint's validation of changes to them.

``today`` (an ISO date, or null for the real date) is not kept as a date: it moves the
clock by whole days (``clock_offset_days``), so the org's time keeps running from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from salesforce_emulator.objects import OrgShape
from salesforce_emulator.record_locks import DEFAULT_LOCK_WAIT_SECONDS
from salesforce_emulator.retention import offset_for
from salesforce_emulator.usage import DEFAULT_API_LIMIT

# Salesforce takes at most 150 MB of base64-encoded data per job upload ("Upload Job Data":
# https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/upload_job_data.htm).
UPLOAD_LIMIT_BYTES = 150_000_000


@dataclass(frozen=True)
class OrgSettings:
    """``upload_limit_bytes`` is the most base64-encoded data one Bulk job upload may hold;
    ``lock_wait_seconds`` how long a Bulk chunk waits for a record lock (``record_locks``)."""

    shared_activities: bool = True
    task_external_id_field: bool = True
    task_external_id_unique: bool = True
    api_limit: int = DEFAULT_API_LIMIT
    clock_offset_days: int = 0
    upload_limit_bytes: int = UPLOAD_LIMIT_BYTES
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS

    @property
    def shape(self) -> OrgShape:
        return OrgShape(
            self.shared_activities, self.task_external_id_field, self.task_external_id_unique
        )


class SettingsError(ValueError):
    pass


def parse_settings_update(raw: Any) -> dict[str, Any]:
    """Checked setting changes as ``OrgSettings`` fields; ``today`` becomes the clock offset."""
    if not isinstance(raw, dict):
        raise SettingsError("settings must be a JSON object")
    types = {
        "shared_activities": bool,
        "task_external_id_field": bool,
        "task_external_id_unique": bool,
        "api_limit": int,
        "upload_limit_bytes": int,
        "lock_wait_seconds": float,
    }
    values = {}
    for key, value in raw.items():
        if key == "today":
            values["clock_offset_days"] = 0 if value is None else offset_for(_date(value))
            continue
        if key not in types:
            raise SettingsError(f"unknown setting {key!r}")
        if types[key] is float and type(value) in (int, float):
            value = float(value)
        if type(value) is not types[key]:
            raise SettingsError(f"setting {key!r} must be {types[key].__name__}")
        if key == "lock_wait_seconds" and value < 0:
            raise SettingsError("setting 'lock_wait_seconds' must not be negative")
        if key in ("api_limit", "upload_limit_bytes") and value < 1:
            raise SettingsError(f"setting {key!r} must be positive")
        values[key] = value
    return values


def _date(value: Any) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise SettingsError(
            f"setting 'today' must be a date like 2027-01-31, or null: {value!r}"
        ) from None
