"""HTTP to Salesforce: every request bounded by timeouts, and which failures are transient.

requests waits forever unless each call passes a timeout, and simple-salesforce passes
none (not for the login, the describe or a query). ``SalesforceHook`` takes a requests
``Session`` precisely to reach "Session features not otherwise exposed by
simple_salesforce", so the timeouts live on the session: a transport adapter fills in the
timeout of every request that names none. The login, simple-salesforce's own calls and
this package's Bulk API calls all go through it.

A read timeout bounds the wait for each read from the socket, not a whole response: a
server that keeps trickling bytes is bounded by the task's ``execution_timeout`` instead.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from activity_sync.errors import ActivitySyncError

# Seconds to wait for a TCP connection and its TLS handshake to Salesforce.
DEFAULT_CONNECT_TIMEOUT = 10.0
# Seconds to wait for the next bytes of a response. Salesforce lets a REST call run for up
# to 10 minutes (https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-api.html),
# but every call this product makes is a small, indexed read or a Bulk job's bookkeeping,
# answered in well under a second; two silent minutes mean the response is lost. A call
# cut off early is retried, which is safe: every step of a load is idempotent.
DEFAULT_READ_TIMEOUT = 120.0
# The connection extras that override the defaults, per org.
CONNECT_TIMEOUT_EXTRA = "connect_timeout"
READ_TIMEOUT_EXTRA = "read_timeout"
HTTP_SCHEMES = ("https://", "http://")
# The error code of a refused request that is worth another attempt later.
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"


class TimeoutSettingError(ActivitySyncError, ValueError):
    """A timeout setting is not a positive number of seconds."""


def _seconds(value: Any, name: str, source: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise TimeoutSettingError(
            f"{source}: {name} must be a positive number of seconds, got {value!r}"
        )
    return seconds


@dataclass(frozen=True)
class HttpTimeouts:
    """Connect and read timeouts (seconds) of every request to one org's Salesforce."""

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT

    def __post_init__(self) -> None:
        _seconds(self.connect, "connect timeout", "HttpTimeouts")
        _seconds(self.read, "read timeout", "HttpTimeouts")

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], source: str) -> HttpTimeouts:
        """The timeouts an Airflow connection's extra sets, defaults for the rest.

        Args:
            extra: the connection's extra (``connect_timeout``, ``read_timeout``; numbers
                or numeric strings, as the Airflow UI may store them).
            source: names the connection in the error.

        Raises:
            TimeoutSettingError: a value is not a positive, finite number.
        """
        values = {}
        for key, field in ((CONNECT_TIMEOUT_EXTRA, "connect"), (READ_TIMEOUT_EXTRA, "read")):
            if extra.get(key) not in (None, ""):
                values[field] = _seconds(extra[key], key, source)
        return cls(**values)

    def as_requests(self) -> tuple[float, float]:
        """The ``timeout=`` argument requests takes."""
        return (self.connect, self.read)


class TimeoutAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that gives every request without a timeout these ``timeouts``."""

    def __init__(self, timeouts: HttpTimeouts, **kwargs: Any) -> None:
        self.timeouts = timeouts
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeouts.as_requests()
        return super().send(request, **kwargs)


def with_timeouts(session: requests.Session, timeouts: HttpTimeouts) -> requests.Session:
    """Make every request of ``session`` (HTTPS and HTTP) time out as ``timeouts`` say.

    Replaces the session's adapters for those schemes; returns the same session.
    """
    for scheme in HTTP_SCHEMES:
        session.mount(scheme, TimeoutAdapter(timeouts))
    return session


def session_timeouts(session: requests.Session) -> HttpTimeouts | None:
    """The timeouts ``with_timeouts`` gave ``session``, or None if its HTTPS has none."""
    adapter = session.get_adapter(HTTP_SCHEMES[0])
    return adapter.timeouts if isinstance(adapter, TimeoutAdapter) else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: causes, contexts, and the reasons urllib3 keeps in args."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(
            e
            for e in (current.__cause__, current.__context__, getattr(current, "reason", None))
            if isinstance(e, BaseException)
        )
        pending.extend(a for a in current.args if isinstance(a, BaseException))


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt at the same request may succeed.

    Transient: a 5xx, ``REQUEST_LIMIT_EXCEEDED``, an expired session, and every way a
    connection fails — refused, reset, timed out while connecting or reading, or cut while
    a body was being read (``ChunkedEncodingError``, ``ContentDecodingError``: a truncated
    body). Not transient: a certificate that fails verification (a setting to fix, not a
    network hiccup) and every other error Salesforce returns.
    """
    from simple_salesforce.exceptions import (
        SalesforceExpiredSession,
        SalesforceGeneralError,
        SalesforceRefusedRequest,
    )

    if any(isinstance(e, ssl.SSLCertVerificationError) for e in _chain(exc)):
        return False
    if isinstance(
        exc,
        SalesforceExpiredSession
        | requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.ChunkedEncodingError
        | requests.exceptions.ContentDecodingError,
    ):
        return True
    if isinstance(exc, SalesforceRefusedRequest):
        return REQUEST_LIMIT_EXCEEDED in str(exc.content)
    if isinstance(exc, SalesforceGeneralError):
        return exc.status >= 500
    return False
