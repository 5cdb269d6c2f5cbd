"""Test controls under ``/__emulator/`` — not Salesforce, not counted, never faulted.

``GET stats`` (calls by route, logins, jobs, rows per object), ``GET|POST faults``,
``GET|POST settings`` (``shared_activities``, ``task_external_id_field``,
``task_external_id_unique``, ``api_limit``, ``upload_limit_bytes``, ``lock_wait_seconds``,
``today``),
``POST sessions/expire`` (every session issued so far expires), ``POST
users/{id}/session`` (a session of that active User: what a person signed in to the UI
does, their edits carry their Id as LastModifiedById) and ``POST reset`` (data
back to the seed, counters zero, settings and faults as at start, sessions live). They need
a token the org issued, expired or not, so only holders of ``connection.json`` (or of an
OAuth login) can use them.
"""

from __future__ import annotations

from typing import Any, Protocol

from salesforce_emulator.faults import FaultConfig, FaultConfigError, Faults
from salesforce_emulator.org_settings import OrgSettings, SettingsError, parse_settings_update
from salesforce_emulator.protocol import ADMIN, ApiError, Request, Response, Route

BASE = "/__emulator"


class Controls(Protocol):
    """What the test controls act on: the whole emulator, through these few operations."""

    @property
    def faults(self) -> Faults: ...

    def update_settings(self, values: dict[str, Any]) -> OrgSettings: ...

    def settings_view(self) -> dict[str, Any]: ...

    def reset(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def expire_sessions(self) -> int: ...

    def user_session(self, user_id: str) -> str: ...


def routes(controls: Controls) -> list[Route]:
    """The ``/__emulator/`` routes acting on ``controls``."""

    def stats(req: Request) -> Response:
        return Response.json(200, controls.stats())

    def get_faults(req: Request) -> Response:
        return Response.json(200, controls.faults.config.to_dict())

    def set_faults(req: Request) -> Response:
        try:
            config = FaultConfig.parse(req.json())
        except FaultConfigError as err:
            raise ApiError(400, "INVALID_FAULTS", str(err)) from err
        controls.faults.configure(config)
        return Response.json(200, config.to_dict())

    def get_settings(req: Request) -> Response:
        return Response.json(200, controls.settings_view())

    def set_settings(req: Request) -> Response:
        try:
            controls.update_settings(parse_settings_update(req.json()))
        except SettingsError as err:
            raise ApiError(400, "INVALID_SETTINGS", str(err)) from err
        return Response.json(200, controls.settings_view())

    def reset(req: Request) -> Response:
        controls.reset()
        return Response.json(200, controls.stats())

    def expire_sessions(req: Request) -> Response:
        return Response.json(200, {"expired": controls.expire_sessions()})

    def user_session(req: Request, user_id: str) -> Response:
        try:
            return Response.json(200, {"access_token": controls.user_session(user_id)})
        except ValueError as err:
            raise ApiError(404, "NOT_FOUND", str(err)) from err

    return [
        Route("GET", f"{BASE}/stats", stats, ADMIN),
        Route("GET", f"{BASE}/faults", get_faults, ADMIN),
        Route("POST", f"{BASE}/faults", set_faults, ADMIN),
        Route("GET", f"{BASE}/settings", get_settings, ADMIN),
        Route("POST", f"{BASE}/settings", set_settings, ADMIN),
        Route("POST", f"{BASE}/reset", reset, ADMIN),
        Route("POST", f"{BASE}/sessions/expire", expire_sessions, ADMIN),
        Route("POST", f"{BASE}/users/{{user_id}}/session", user_session, ADMIN),
    ]
