"""The emulated org as an application: state, request policy (auth, limits, faults), routing.

Independent of the HTTP server so that the policy reads top to bottom in ``handle``:
OAuth is open, everything else needs a Bearer token; admin calls are neither counted nor
faulted; API calls are refused once the daily allowance is spent, may be answered by an
injected fault, and otherwise count and carry ``Sforce-Limit-Info``.

This is the one module that knows every subsystem: each gets only the state it uses (the
shared :class:`~salesforce_emulator.org.Org`, the query cursors, the counters, the faults)
and hands back its routes, which are composed here.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from salesforce_emulator import activity_relations, admin, auth, retention
from salesforce_emulator.auth import Auth, bearer_token
from salesforce_emulator.bulk import BulkService
from salesforce_emulator.bulk_worker import DEFAULT_WORKERS
from salesforce_emulator.composite import Collections
from salesforce_emulator.context import ACTING_USER
from salesforce_emulator.faults import (
    EXPIRED_SESSION,
    REQUEST_LIMIT,
    UNAVAILABLE,
    FaultConfig,
    Faults,
)
from salesforce_emulator.objects import TASK_EXTERNAL_ID
from salesforce_emulator.org import Org
from salesforce_emulator.org_settings import OrgSettings, SettingsError
from salesforce_emulator.protocol import (
    ADMIN,
    API_VERSION,
    OAUTH,
    ApiError,
    Request,
    Response,
    Route,
    Router,
)
from salesforce_emulator.query import QueryService
from salesforce_emulator.rest import RestApi
from salesforce_emulator.seed import seed_org
from salesforce_emulator.store import Store
from salesforce_emulator.tls import CA_FILE
from salesforce_emulator.usage import Usage

log = logging.getLogger("salesforce_emulator")

SEED_SNAPSHOT = "seed.sqlite"
# How often (real seconds) the archiving and Recycle Bin processes run between clock changes.
MAINTENANCE_SECONDS = 60


class Emulator:
    """One org: its database, credentials, settings, counters, faults, queries and jobs.

    ``data_dir`` holds the org (created on first start, seeded with ``seed`` if given);
    ``public_host`` is the name clients use in URLs. ``shared_activities`` and
    ``api_limit`` override the saved settings; ``faults`` are active from the start;
    ``bulk_workers`` Bulk jobs run at once.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        public_host: str = "127.0.0.1",
        seed: str | None = None,
        shared_activities: bool | None = None,
        faults: FaultConfig | None = None,
        api_limit: int | None = None,
        bulk_workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The name clients use in URLs (instance_url); the bind address is the server's.
        self.public_host = public_host
        self.port = 0
        self.store = Store(self.data_dir)
        self.auth = Auth(self.store)
        saved = OrgSettings(**(self.store.get_meta("settings") or {}))
        overrides = {}
        if shared_activities is not None:
            overrides["shared_activities"] = shared_activities
        if api_limit is not None:
            overrides["api_limit"] = api_limit
        self.start_settings = replace(saved, **overrides)
        self.store.set_meta("settings", asdict(self.start_settings))
        self.org = Org(self.store, self.auth.credentials.user_id, self.start_settings)
        self.usage = Usage(self.store, self.start_settings.api_limit)
        self.start_faults = faults or FaultConfig()
        self.faults = Faults(self.start_faults)
        self.queries = QueryService(self.store)
        self._settings_lock = threading.Lock()
        self._maintained = 0.0
        snapshot = self.data_dir / SEED_SNAPSHOT
        if not snapshot.exists():
            if seed:
                seed_org(self.store, self.org.user_id, seed)
            self.store.snapshot(snapshot)
        self.bulk = BulkService(
            self.org, self.queries, self.usage, self.faults, self.data_dir, bulk_workers
        )
        rest = RestApi(self.org, self.queries, self.usage)
        self.router = Router(
            [
                *auth.routes(self.auth, lambda: self.instance_url),
                *rest.routes(),
                *Collections(self.org).routes(),
                *self.bulk.routes(),
                *admin.routes(self),
            ]
        )

    # ------------------------------------------------------------------ state helpers

    @property
    def instance_url(self) -> str:
        return f"https://{self.public_host}:{self.port}"

    @property
    def settings(self) -> OrgSettings:
        return self.org.settings

    def settings_view(self) -> dict[str, Any]:
        """The settings as the admin API shows them, with the clock's date as ``today``."""
        return {**asdict(self.org.settings), "today": self.org.clock.today().isoformat()}

    def maintain(self) -> dict[str, int]:
        """Run Salesforce's background processes now: archiving and the Recycle Bin."""
        self._maintained = time.monotonic()
        with self.store.transaction() as db:
            done = retention.run(db, self.org.clock.stamp())
        if any(done.values()):
            log.info("archived %(archived)d activities, purged %(purged)d deleted rows", done)
        return done

    def update_settings(self, values: dict[str, Any]) -> OrgSettings:
        """Apply validated setting changes; turning Shared Activities on repairs relations.

        Raises SettingsError for a key field made Unique while Tasks share a key, which
        Salesforce refuses too.
        """
        with self._settings_lock:
            before = self.org.settings
            if values.get("task_external_id_unique") and not before.task_external_id_unique:
                self._refuse_duplicate_keys()
            self.org.settings = replace(before, **values)
            self.usage.api_limit = self.org.settings.api_limit
            self.store.set_meta("settings", asdict(self.org.settings))
            if self.org.settings.shared_activities and not before.shared_activities:
                with self.store.transaction() as db:
                    activity_relations.resync(self.org.context(), db)
            if self.org.settings.clock_offset_days != before.clock_offset_days:
                self.maintain()
        return self.org.settings

    def _refuse_duplicate_keys(self) -> None:
        shared = self.store.read(
            f'SELECT "{TASK_EXTERNAL_ID}" FROM Task WHERE IsDeleted = 0 '
            f'AND "{TASK_EXTERNAL_ID}" IS NOT NULL GROUP BY "{TASK_EXTERNAL_ID}" COLLATE BINARY '
            "HAVING COUNT(*) > 1 LIMIT 3"
        )
        if shared:
            keys = ", ".join(row[0] for row in shared)
            raise SettingsError(f"{TASK_EXTERNAL_ID} can't be made Unique: Tasks share {keys}")

    def reset(self) -> None:
        """Back to the seed: data, settings and faults as at start, counters zero, no jobs."""
        with self.bulk.paused():
            tokens = self.auth.tokens()
            self.store.restore(self.data_dir / SEED_SNAPSHOT)
            self.auth.restore_tokens(tokens)
            self.auth.revive()
            self.bulk.forget_all()
            self.org.settings = self.start_settings
            self.store.set_meta("settings", asdict(self.org.settings))
            self.usage.api_limit = self.org.settings.api_limit
            self.usage.zero()
            self.faults.configure(self.start_faults)
            self.queries.clear()

    def expire_sessions(self) -> int:
        """Expire every session issued so far, as an org's session timeout does."""
        return self.auth.expire()

    def user_session(self, user_id: str) -> str:
        """A session of another active User (the admin control): writes carry their Id."""
        return self.auth.issue_for_user(user_id)

    def stats(self) -> dict[str, Any]:
        """Calls, jobs, rows per object, faults and settings: the admin ``stats`` body."""
        return {
            "api": self.usage.snapshot(),
            "auth": self.auth.counts(),
            "jobs": self.bulk.counts(),
            "rows": self.store.row_counts(),
            "faults": {**self.faults.config.to_dict(), "injected": dict(self.faults.injected)},
            "settings": self.settings_view(),
        }

    def connection_info(self) -> dict[str, Any]:
        """What a client needs to connect: ``connection.json`` and the ready line."""
        c = self.auth.credentials
        return {
            "instance_url": self.instance_url,
            "access_token": c.access_token,
            "ca_file": str(self.data_dir / CA_FILE),
            "data_dir": str(self.data_dir),
            "port": self.port,
            "org_id": c.org_id,
            "user_id": c.user_id,
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "username": c.username,
            "password": c.password,
            "api_version": API_VERSION,
        }

    def close(self) -> None:
        self.bulk.stop()
        self.usage.save()
        self.store.close()

    # ---------------------------------------------------------------------- requests

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises (errors become Salesforce-shaped responses)."""
        try:
            route, params = self.router.match(request.method, request.segments)
            if route.kind == OAUTH:
                return route.handler(request, **params)
            token = bearer_token(request.headers.get("Authorization"))
            if route.kind == ADMIN and self.auth.issued(token):
                return route.handler(request, **params)
            if not self.auth.valid(token):
                raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if time.monotonic() - self._maintained > MAINTENANCE_SECONDS:
                self.maintain()
            return self._api_call(route, request, params, token)
        except ApiError as err:
            return err.response()
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return ApiError(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred.").response()

    def _api_call(
        self, route: Route, request: Request, params: dict[str, str], token: str | None
    ) -> Response:
        if self.usage.exhausted():
            self.usage.refuse("limit_exhausted")
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        fault = self.faults.for_call()
        if fault == UNAVAILABLE:
            self.usage.refuse("fault_503")
            raise ApiError(503, "SERVER_UNAVAILABLE", "Service temporarily unavailable")
        if fault == REQUEST_LIMIT:
            self.usage.refuse("fault_request_limit")
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        if fault == EXPIRED_SESSION:
            # The session ends here, not just this call: the client must log in again.
            self.auth.expire({token} if token else set())
            self.usage.refuse("fault_expired_session")
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        self.usage.count(f"{route.method} {route.template}")
        acting = ACTING_USER.set(self.auth.user_of(token))
        try:
            response = route.handler(request, **params)
        except ApiError as err:
            response = err.response()
        finally:
            ACTING_USER.reset(acting)
        response.headers["Sforce-Limit-Info"] = self.usage.header()
        return response
