"""The one module that touches Airflow: Salesforce connections, lake paths, shared names
and the tasks' execution timeouts.

Everything else in the package takes plain objects (a ``simple_salesforce.Salesforce``, a
path-like) so it can be tested without Airflow running. Airflow imports stay inside the
functions, as the Salesforce provider does, so importing this module is cheap: the DAG
files import it when they are parsed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import RetryPolicy
    from simple_salesforce import Salesforce

    from activity_sync.salesforce import SalesforceClient

DEFAULT_LAKE = Path(__file__).resolve().parents[2] / "lake"
# The pool every task that calls Salesforce runs in: it caps concurrent calls per deployment.
SALESFORCE_POOL = "salesforce_api"
SALESFORCE_POOL_SLOTS = 4
SALESFORCE_POOL_DESCRIPTION = "Salesforce API calls"
# The Asset the hourly DAG publishes after a load and the audit DAG is scheduled on.
LOADED_ASSET = "activity_sync_loaded"

# execution_timeout of every task of both DAGs, by task id: how long one attempt may run
# before Airflow stops it, so that nothing stuck holds a worker, or a salesforce_api pool
# slot, forever. The attempt then fails and Airflow's retry takes the work up again; every
# step is repeatable, and a load resumes its jobs. One Salesforce call that fails until
# SalesforceClient gives up (6 attempts, each up to the 10 s connect and 120 s read
# timeouts, with ~30 s of backoff) takes under 15 minutes, which bounds the small tasks.
EXECUTION_TIMEOUTS: dict[str, timedelta] = {
    # Computation on the run's params or a small YAML file.
    "window": timedelta(minutes=5),
    "select_orgs": timedelta(minutes=5),
    "targets": timedelta(minutes=5),
    "publish": timedelta(minutes=5),
    "fail_if_any_org_failed": timedelta(minutes=5),
    "fail_if_any_audit_failed": timedelta(minutes=5),
    # One hour of landing files read (from object storage, perhaps) and written as Parquet.
    "extract": timedelta(minutes=30),
    # One hour planned in memory: seconds normally, minutes for a very large hour.
    "plan": timedelta(minutes=30),
    # A login and one describe: two calls at the 15-minute bound.
    "detect": timedelta(minutes=30),
    # Per poke of the budget sensor (a login and /limits); between pokes it holds nothing.
    "wait_for_budget": timedelta(minutes=30),
    # The CRM mirror: incremental REST queries in minutes; an org's first, full mirror is
    # six Bulk query jobs. Each object is saved once fetched, so a retry after a timeout
    # fetches only the objects still missing.
    "refresh_crm": timedelta(hours=2),
    # A handful of Bulk jobs (Tasks, re-sends, TaskRelations), each polled for up to an
    # hour (SalesforceClient.job_timeout); an hour loads in minutes normally. A retried
    # load finds its jobs in the lake and does not send the rows again.
    "load": timedelta(hours=3),
    # Counts from the lake, then the day's Tasks and relations read back in chunks (REST,
    # or Bulk query jobs for a big day, each polled for up to an hour).
    "audit": timedelta(hours=2),
    # The user's alert callback may call out (chat, mail): it gets minutes, not hours.
    "raise_alerts": timedelta(minutes=10),
}


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


def retry_policy() -> RetryPolicy:
    """Every task's retry policy: a mistake fails at once, naming its cause; the rest retry.

    Airflow retries every failure. A configuration or input error (an unknown key in
    orgs.yaml, a manual run without a data interval) fails the same way on every try, so
    its retries only keep the run "running" and hold a run slot for half an hour. Which
    errors those are is ``steps.fails_at_once``; it is imported when a task fails, not
    when the DAG file is parsed. Set it in a DAG's ``default_args``.
    """
    from airflow.sdk import RetryDecision, RetryPolicy

    class FailMistakesAtOnce(RetryPolicy):
        def evaluate(self, exception, try_number, max_tries, context=None) -> RetryDecision:
            from activity_sync.steps import fails_at_once

            if fails_at_once(exception):
                return RetryDecision.fail(
                    f"{type(exception).__name__} will not heal by retrying: {exception}. "
                    "Fix the cause, then clear the task."
                )
            return RetryDecision.default()

    return FailMistakesAtOnce()
