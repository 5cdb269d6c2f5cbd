"""Who may call: the org's integration user, its standing access token, and OAuth2 logins.

The standing token (written to ``connection.json``) lets tests and scripts connect
directly. The OAuth2 token endpoint serves the client-credentials and password grants so
that an Airflow connection holding only a login or a consumer key/secret can authenticate,
exactly as ``simple_salesforce`` does against a real org. Tokens live in SQLite and so
survive restarts; a reset keeps them.

A session that expires stays expired: "Sessions expire automatically after a predetermined
length of inactivity ... When your session expires, the exception code INVALID_SESSION_ID is
returned. If this code is returned, you must invoke the login() call again"
(https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_concepts_errorhandling.htm).
An expired token answers 401 ``INVALID_SESSION_ID`` to every API call until the client gets
a new one from the token endpoint; only the test controls still accept it (they are not
Salesforce), and a reset revives it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from salesforce_emulator.ids import ORGANIZATION_PREFIX, USER_PREFIX
from salesforce_emulator.protocol import OAUTH, Request, Response, Route
from salesforce_emulator.store import Store, timestamp

INTEGRATION_USERNAME = "integration@activity-sync.emulator"
# _tokens.kind of a session opened for another user (the test control): the prefix + Id.
USER_SESSION = "user:"
TOKEN_PATH = "/services/oauth2/token"


@dataclass(frozen=True)
class Credentials:
    org_id: str
    user_id: str
    access_token: str
    client_id: str
    client_secret: str
    username: str
    password: str


class Auth:
    """Issues and checks access tokens; creates the integration user on first start."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self.credentials = self._ensure_credentials()
        self._tokens = {row[0] for row in store.read("SELECT token FROM _tokens")}
        self._users = {
            token: kind.removeprefix(USER_SESSION)
            for token, kind in store.read("SELECT token, kind FROM _tokens")
            if kind.startswith(USER_SESSION)
        }
        self._expired: set[str] = set(store.get_meta("expired_tokens") or [])
        self.logins = 0

    def _ensure_credentials(self) -> Credentials:
        saved = self.store.get_meta("credentials")
        if saved:
            return Credentials(**saved)
        now = timestamp()
        with self.store.transaction() as db:
            org_id = self.store.next_ids(db, ORGANIZATION_PREFIX, 1)[0]
            user_id = self.store.next_ids(db, USER_PREFIX, 1)[0]
            db.execute(
                "INSERT INTO User (Id, IsDeleted, CreatedDate, CreatedById, LastModifiedDate, "
                "LastModifiedById, SystemModstamp, Username, FirstName, LastName, Email, Alias, "
                "Title, IsActive) VALUES (?, 0, ?, ?, ?, ?, ?, ?, 'Integration', 'User', ?, "
                "'integ', 'API Integration', 1)",
                (
                    user_id,
                    now,
                    user_id,
                    now,
                    user_id,
                    now,
                    INTEGRATION_USERNAME,
                    INTEGRATION_USERNAME,
                ),
            )
            token = f"{org_id[:15]}!{secrets.token_urlsafe(48)}"
            db.execute(
                "INSERT INTO _tokens (token, issued, kind) VALUES (?, ?, 'standing')", (token, now)
            )
        creds = Credentials(
            org_id=org_id,
            user_id=user_id,
            access_token=token,
            client_id="3MVG9emulator" + secrets.token_hex(16),
            client_secret=secrets.token_hex(32),
            username=INTEGRATION_USERNAME,
            password=secrets.token_urlsafe(18),
        )
        self.store.set_meta("credentials", creds.__dict__)
        return creds

    def valid(self, token: str | None) -> bool:
        """A live session: issued here and not expired."""
        return self.issued(token) and token not in self._expired

    def issued(self, token: str | None) -> bool:
        """Issued here, expired or not: what the test controls accept."""
        return token is not None and token in self._tokens

    def expire(self, tokens: set[str] | None = None) -> int:
        """Expire ``tokens`` (default: every session issued so far); returns how many."""
        with self._lock:
            fresh = (self._tokens if tokens is None else tokens & self._tokens) - self._expired
            self._expired |= fresh
            self.store.set_meta("expired_tokens", sorted(self._expired))
        return len(fresh)

    def revive(self) -> None:
        """Every session live again and no logins counted: the state after a reset."""
        with self._lock:
            self._expired.clear()
            self.store.set_meta("expired_tokens", [])
            self.logins = 0

    def counts(self) -> dict[str, int]:
        return {"logins": self.logins, "expired_sessions": len(self._expired)}

    def tokens(self) -> list[tuple[str, str, str]]:
        return self.store.read("SELECT token, issued, kind FROM _tokens")

    def restore_tokens(self, rows: list[tuple[str, str, str]]) -> None:
        """Put back tokens after the database was replaced (reset)."""
        with self.store.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO _tokens (token, issued, kind) VALUES (?, ?, ?)", rows
            )
        self._tokens = {row[0] for row in self.store.read("SELECT token FROM _tokens")}

    def user_of(self, token: str | None) -> str | None:
        """The user whose session ``token`` is, if not the integration user's."""
        return self._users.get(token) if token else None

    def issue_for_user(self, user_id: str) -> str:
        """A session of another (active) user: their writes carry their Id."""
        found = self.store.read("SELECT IsActive FROM User WHERE Id = ?", (user_id,))
        if not found or not found[0][0]:
            raise ValueError(f"no active User {user_id}")
        token = self._issue(f"{USER_SESSION}{user_id}")
        self._users[token] = user_id
        return token

    def _issue(self, kind: str) -> str:
        token = f"{self.credentials.org_id[:15]}!{secrets.token_urlsafe(48)}"
        with self._lock, self.store.transaction() as db:
            db.execute(
                "INSERT INTO _tokens (token, issued, kind) VALUES (?, ?, ?)",
                (token, timestamp(), kind),
            )
            self._tokens.add(token)
            self.logins += 1
        return token

    def token_endpoint(
        self, body: bytes, authorization: str | None, instance_url: str
    ) -> tuple[int, dict[str, Any]]:
        """``POST /services/oauth2/token``: (status, JSON body) in Salesforce's OAuth shape."""
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode("utf-8")
                client_id, _, client_secret = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                return 400, _oauth_error("invalid_client", "invalid client credentials")
        creds = self.credentials
        grant = form.get("grant_type")
        if grant not in ("client_credentials", "password"):
            return 400, _oauth_error("unsupported_grant_type", "grant type not supported")
        if not (
            hmac.compare_digest(client_id or "", creds.client_id)
            and hmac.compare_digest(client_secret or "", creds.client_secret)
        ):
            return 400, _oauth_error("invalid_client", "invalid client credentials")
        if grant == "password" and not (
            form.get("username") == creds.username
            and hmac.compare_digest(form.get("password") or "", creds.password)
        ):
            return 400, _oauth_error("invalid_grant", "authentication failure")
        token = self._issue(grant)
        issued = str(int(time.time() * 1000))
        signature = base64.b64encode(
            hmac.new(
                creds.client_secret.encode(), (instance_url + issued).encode(), hashlib.sha256
            ).digest()
        ).decode()
        return 200, {
            "access_token": token,
            "instance_url": instance_url,
            "id": f"{instance_url}/id/{creds.org_id}/{creds.user_id}",
            "token_type": "Bearer",
            "issued_at": issued,
            "signature": signature,
            "scope": "api",
        }


def _oauth_error(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description}


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` (or legacy ``OAuth …``) header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() in ("bearer", "oauth") else None


def routes(auth: Auth, instance_url: Callable[[], str]) -> list[Route]:
    """The OAuth token endpoint; ``instance_url()`` answers for a request without ``Host``."""

    def token(req: Request) -> Response:
        # The instance is wherever the client reached the token endpoint: behind Docker that
        # is a service name, from the host it is localhost.
        host = req.headers.get("Host")
        status, body = auth.token_endpoint(
            req.body,
            req.headers.get("Authorization"),
            f"https://{host}" if host else instance_url(),
        )
        return Response.json(status, body)

    return [Route("POST", TOKEN_PATH, token, OAUTH)]
