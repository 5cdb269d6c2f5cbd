"""The org's switchable settings and the admin endpoint's validation of changes to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from salesforce_emulator.objects import OrgShape
from salesforce_emulator.usage import DEFAULT_API_LIMIT


@dataclass(frozen=True)
class OrgSettings:
    shared_activities: bool = True
    task_external_id_field: bool = True
    api_limit: int = DEFAULT_API_LIMIT

    @property
    def shape(self) -> OrgShape:
        return OrgShape(self.shared_activities, self.task_external_id_field)


class SettingsError(ValueError):
    pass


def parse_settings_update(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SettingsError("settings must be a JSON object")
    types = {"shared_activities": bool, "task_external_id_field": bool, "api_limit": int}
    for key, value in raw.items():
        if key not in types:
            raise SettingsError(f"unknown setting {key!r}")
        if type(value) is not types[key]:
            raise SettingsError(f"setting {key!r} must be {types[key].__name__}")
        if key == "api_limit" and value < 1:
            raise SettingsError("setting 'api_limit' must be positive")
    return raw
