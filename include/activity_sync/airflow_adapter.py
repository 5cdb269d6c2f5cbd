"""The one module that touches Airflow: Salesforce connections, lake paths, shared names.

Everything else in the package takes plain objects (a ``simple_salesforce.Salesforce``, a
path-like) so it can be tested without Airflow running. Airflow imports stay inside the
functions, as the Salesforce provider does, so importing this module is cheap: the DAG
files import it when they are parsed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

    from activity_sync.salesforce import SalesforceClient

DEFAULT_LAKE = Path(__file__).resolve().parents[2] / "lake"
# The pool every task that calls Salesforce runs in: it caps concurrent calls per deployment.
SALESFORCE_POOL = "salesforce_api"
SALESFORCE_POOL_SLOTS = 4
SALESFORCE_POOL_DESCRIPTION = "Salesforce API calls"
# The Asset the hourly DAG publishes after a load and the audit DAG is scheduled on.
LOADED_ASSET = "activity_sync_loaded"


def salesforce_connector(conn_id: str) -> Callable[[], Salesforce]:
    """Return a function that opens a fresh, authenticated client for ``conn_id``.

    A factory rather than a client, because an expired session is cured by logging in
    again, and the loader must be able to do that mid-run. The connection's extra may hold:

    - ``connect_timeout``, ``read_timeout``: seconds (defaults in
      :mod:`activity_sync.transport`). They bound every request of the session handed to
      ``SalesforceHook``, so the login and simple-salesforce's own calls too.
    - ``ca_bundle``: the CA file to trust (a private CA such as the local emulator's). The
      session then ignores REQUESTS_CA_BUNDLE, which would otherwise override it.

    Raises (when called):
        TimeoutSettingError: a timeout extra is not a positive number.
    """

    def connect() -> Salesforce:
        import requests
        from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
        from airflow.sdk import BaseHook

        from activity_sync.transport import HttpTimeouts, with_timeouts

        extra: dict[str, Any] = BaseHook.get_connection(conn_id).extra_dejson
        timeouts = HttpTimeouts.from_extra(extra, f"connection {conn_id!r}")
        session = with_timeouts(requests.Session(), timeouts)
        if extra.get("ca_bundle"):
            session.verify = extra["ca_bundle"]
            session.trust_env = False
        return SalesforceHook(salesforce_conn_id=conn_id, session=session).get_conn()

    return connect


def salesforce_client(conn_id: str) -> SalesforceClient:
    """A counted, retrying client for one org's connection.

    Bulk polling and retry backoff are tunable by environment (seconds), so a test or a
    demo against the local emulator need not wait as long as real Salesforce warrants.
    """
    from activity_sync.salesforce import SalesforceClient

    return SalesforceClient(
        salesforce_connector(conn_id),
        poll_wait=float(os.environ.get("ACTIVITY_SYNC_BULK_POLL_SECONDS", "2")),
        backoff=float(os.environ.get("ACTIVITY_SYNC_RETRY_BACKOFF_SECONDS", "1")),
    )


def object_path(url: str) -> Any:
    """An ``ObjectStoragePath``: ``file://`` here, ``s3://`` or ``gs://`` for users."""
    from airflow.sdk import ObjectStoragePath

    if "://" not in url:
        url = "file://" + str(Path(url).resolve())
    return ObjectStoragePath(url)


def lake_root() -> Any:
    """The data lake root, from ACTIVITY_SYNC_LAKE (default: ./lake in the project)."""
    return object_path(os.environ.get("ACTIVITY_SYNC_LAKE", str(DEFAULT_LAKE)))


@contextmanager
def failing_without_retry(*errors: type[BaseException]) -> Iterator[None]:
    """Turn ``errors`` into a task failure that Airflow does not retry.

    For errors in the run's own params (an unknown org): a retry reads the same params.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except errors as exc:
        raise AirflowFailException(str(exc)) from exc
