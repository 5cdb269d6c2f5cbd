"""transport.py: every request bounded by connect and read timeouts, over real sockets that
never answer; which failures count as transient; timeouts from a connection's extra.

requests itself never times out (https://requests.readthedocs.io/en/latest/user/advanced/#timeouts:
"Most requests to external servers should have a timeout attached, in case the server is
not responding in a timely manner. By default, requests do not time out unless a timeout
value is set explicitly.").
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)
from urllib3.exceptions import MaxRetryError, ProtocolError

from activity_sync.errors import ActivitySyncError
from activity_sync.salesforce import SalesforceClient
from activity_sync.transport import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    HttpTimeouts,
    TimeoutSettingError,
    is_transient,
    session_timeouts,
    with_timeouts,
)

SHORT = HttpTimeouts(connect=0.4, read=0.4)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never sends a byte."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: a new connection is never established."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as server:
        port = server.getsockname()[1]
        waiting = []
        for _ in range(3):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            waiting.append(sock)
        time.sleep(0.1)
        yield port
        for sock in waiting:
            sock.close()


def _elapsed(fn) -> tuple[BaseException, float]:
    start = time.monotonic()
    with pytest.raises(requests.RequestException) as caught:
        fn()
    return caught.value, time.monotonic() - start


def test_a_response_that_never_comes_ends_in_a_transient_read_timeout(silent_server):
    session = with_timeouts(requests.Session(), HttpTimeouts(connect=5, read=0.4))
    error, took = _elapsed(lambda: session.get(f"http://127.0.0.1:{silent_server}/"))
    assert isinstance(error, requests.ReadTimeout)
    assert 0.35 < took < 2
    assert is_transient(error)


def test_a_tls_handshake_that_never_completes_is_bounded_by_the_connect_timeout(silent_server):
    session = with_timeouts(requests.Session(), HttpTimeouts(connect=0.4, read=30))
    error, took = _elapsed(lambda: session.get(f"https://127.0.0.1:{silent_server}/"))
    assert took < 2
    assert is_transient(error)


def test_a_connection_that_is_never_accepted_ends_in_a_transient_connect_timeout(full_backlog):
    session = with_timeouts(requests.Session(), HttpTimeouts(connect=0.4, read=30))
    error, took = _elapsed(lambda: session.get(f"http://127.0.0.1:{full_backlog}/"))
    assert isinstance(error, requests.ConnectTimeout)
    assert took < 2
    assert is_transient(error)


def test_a_plain_session_waits_longer_than_any_timeout_which_is_why_the_adapter_exists(
    silent_server,
):
    """Pins requests' default: without the adapter the same request is still waiting."""
    finished = threading.Event()

    def call() -> None:
        with contextlib.suppress(requests.RequestException):
            requests.Session().get(f"http://127.0.0.1:{silent_server}/")
        finished.set()

    threading.Thread(target=call, daemon=True).start()
    assert not finished.wait(1.5)


def test_a_timeout_the_caller_names_wins_over_the_sessions(silent_server):
    session = with_timeouts(requests.Session(), HttpTimeouts(connect=5, read=30))
    error, took = _elapsed(lambda: session.get(f"http://127.0.0.1:{silent_server}/", timeout=0.3))
    assert isinstance(error, requests.ReadTimeout)
    assert took < 2


def test_every_scheme_of_the_session_is_bounded_and_the_timeouts_can_be_read_back():
    session = with_timeouts(requests.Session(), SHORT)
    assert session_timeouts(session) == SHORT
    assert session.get_adapter("http://x").timeouts == SHORT
    assert session_timeouts(requests.Session()) is None


def test_a_client_on_a_session_without_timeouts_gets_the_defaults(fresh_emulator):
    sf = fresh_emulator.simple_salesforce()
    assert session_timeouts(sf.session) is None
    client = SalesforceClient(lambda: sf, poll_wait=0.02)
    assert session_timeouts(client.sf.session) == HttpTimeouts(
        DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT
    )


def test_a_client_keeps_the_timeouts_its_factory_gave_the_session(fresh_emulator):
    session = with_timeouts(fresh_emulator.session(), SHORT)
    client = SalesforceClient(lambda: fresh_emulator.simple_salesforce(session=session))
    assert session_timeouts(client.sf.session) == SHORT


def test_a_login_that_times_out_is_retried_with_backoff(fresh_emulator):
    attempts = []

    def connect():
        attempts.append(1)
        if len(attempts) < 3:
            raise requests.ReadTimeout("login: read timed out")
        return fresh_emulator.simple_salesforce()

    waits: list[float] = []
    client = SalesforceClient(connect, backoff=0.01, sleep=waits.append)
    assert len(attempts) == 3 and len(waits) == 2
    assert not client.query("SELECT Id FROM User LIMIT 1").empty


def test_a_relogin_after_an_expired_session_is_retried_when_it_times_out(fresh_emulator):
    logins = []

    def connect():
        logins.append(1)
        if len(logins) == 2:  # the first re-login's answer is lost
            raise requests.ConnectionError("connection reset by peer")
        return fresh_emulator.simple_salesforce()

    client = SalesforceClient(connect, backoff=0.001, max_attempts=4)
    calls = []

    def expired_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise SalesforceExpiredSession("u", 401, "r", "expired")
        return "ok"

    assert client._retrying("describe Task", expired_once) == "ok"
    assert len(logins) == 3
    assert client.calls["login"] == 2


def _body_cut(exc_type: type[requests.RequestException]) -> requests.RequestException:
    return exc_type(ProtocolError("Connection broken: IncompleteRead(10 bytes read, 90 more)"))


@pytest.mark.parametrize(
    "error",
    [
        _body_cut(requests.exceptions.ChunkedEncodingError),
        _body_cut(requests.exceptions.ContentDecodingError),
        requests.ReadTimeout("read timed out"),
        requests.ConnectTimeout("connect timed out"),
        requests.ConnectionError("connection reset by peer"),
        requests.exceptions.SSLError("EOF occurred in violation of protocol"),
        SalesforceGeneralError("u", 503, "r", "busy"),
        SalesforceRefusedRequest("u", 403, "r", [{"errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
        SalesforceExpiredSession("u", 401, "r", "expired"),
    ],
    ids=type,
)
def test_dropped_cut_and_timed_out_connections_and_busy_salesforce_are_transient(error):
    assert is_transient(error)


def _certificate_rejected() -> requests.exceptions.SSLError:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    return requests.exceptions.SSLError(MaxRetryError(None, "https://x/", verify))


@pytest.mark.parametrize(
    "error",
    [
        _certificate_rejected(),
        SalesforceGeneralError("u", 409, "r", "conflict"),
        SalesforceRefusedRequest("u", 403, "r", [{"errorCode": "INSUFFICIENT_ACCESS"}]),
        requests.exceptions.InvalidURL("no host"),
        ValueError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_rejected_certificate_and_refusals_for_good_are_not_transient(error):
    assert not is_transient(error)


def test_timeouts_come_from_the_connection_extra_as_numbers_or_numeric_strings():
    assert HttpTimeouts.from_extra({}, "connection 'x'") == HttpTimeouts()
    assert HttpTimeouts.from_extra(
        {"connect_timeout": 3, "read_timeout": "45.5"}, "connection 'x'"
    ) == HttpTimeouts(3, 45.5)
    assert HttpTimeouts.from_extra({"read_timeout": ""}, "c").read == DEFAULT_READ_TIMEOUT


@pytest.mark.parametrize("value", [0, -1, "soon", True, float("inf"), float("nan"), [30]])
def test_a_timeout_that_is_not_a_positive_number_is_refused_naming_connection_and_key(value):
    with pytest.raises(TimeoutSettingError, match=r"connection 'sf_acme': read_timeout") as e:
        HttpTimeouts.from_extra({"read_timeout": value}, "connection 'sf_acme'")
    assert isinstance(e.value, ActivitySyncError)
