"""Test controls under ``/__emulator/`` — not Salesforce, not counted, never faulted.

``GET stats`` (calls by route, jobs, rows per object), ``GET|POST faults``,
``GET|POST settings`` (``shared_activities``, ``task_external_id_field``, ``api_limit``) and
``POST reset`` (data back to the seed, counters zero, settings and faults as at start).
They need the same Bearer token as the API, so only holders of ``connection.json`` can use
them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from salesforce_emulator.faults import FaultConfig, FaultConfigError
from salesforce_emulator.org_settings import SettingsError, parse_settings_update
from salesforce_emulator.protocol import ApiError, Request, Response

if TYPE_CHECKING:
    from salesforce_emulator.app import Emulator


def register(emu: Emulator) -> None:
    add = emu.router.add

    def stats(req: Request) -> Response:
        return Response.json(200, emu.stats())

    def get_faults(req: Request) -> Response:
        return Response.json(200, emu.faults.config.to_dict())

    def set_faults(req: Request) -> Response:
        try:
            config = FaultConfig.parse(req.json())
        except FaultConfigError as err:
            raise ApiError(400, "INVALID_FAULTS", str(err)) from err
        emu.faults.configure(config)
        return Response.json(200, config.to_dict())

    def get_settings(req: Request) -> Response:
        return Response.json(200, asdict(emu.settings))

    def set_settings(req: Request) -> Response:
        try:
            values = parse_settings_update(req.json())
        except SettingsError as err:
            raise ApiError(400, "INVALID_SETTINGS", str(err)) from err
        return Response.json(200, asdict(emu.update_settings(values)))

    def reset(req: Request) -> Response:
        emu.reset()
        return Response.json(200, emu.stats())

    add("GET", "/__emulator/stats", stats, kind="admin")
    add("GET", "/__emulator/faults", get_faults, kind="admin")
    add("POST", "/__emulator/faults", set_faults, kind="admin")
    add("GET", "/__emulator/settings", get_settings, kind="admin")
    add("POST", "/__emulator/settings", set_settings, kind="admin")
    add("POST", "/__emulator/reset", reset, kind="admin")
