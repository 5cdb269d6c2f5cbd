"""The one module that touches Airflow: Salesforce connections, lake paths, shared names
and the tasks' execution timeouts.

Everything else in the package takes plain objects (a ``simple_salesforce.Salesforce``, a
path-like) so it can be tested without Airflow running. Airflow imports stay inside the
functions, as the Salesforce provider does, so importing this module is cheap: the DAG
files import it when they are parsed.
"""

from __future__ import annotations

import logging
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
# The audit's pool: it caps the audit's Salesforce reads per deployment. The hourly DAG
# caps Salesforce work per org instead (org_slots).
SALESFORCE_POOL = "salesforce_api"
SALESFORCE_POOL_SLOTS = 4
SALESFORCE_POOL_DESCRIPTION = "Salesforce API calls"
# The Asset the hourly DAG publishes after a load and the audit DAG is scheduled on.
LOADED_ASSET = "activity_sync_loaded"
# The hourly DAG's outlet: through an alias a task emits the Asset event only when it adds
# one, so a run in which no org loaded (a dry run) publishes nothing and is not skipped.
LOADED_ALIAS = "activity_sync_loads"

# execution_timeout of every task of both DAGs, by task id: how long one attempt may run
# before Airflow stops it, so that nothing stuck holds a worker, a pool slot or an org's
# Salesforce slot forever. The attempt then fails and Airflow's retry takes the work up again; every
# step is repeatable, and a load resumes its jobs. One Salesforce call that fails until
# SalesforceClient gives up (6 attempts, each up to the 10 s connect and 120 s read
# timeouts, with ~30 s of backoff) takes under 15 minutes, which bounds the small tasks.
EXECUTION_TIMEOUTS: dict[str, timedelta] = {
    # Computation on the run's params, a small YAML file, or the orgs' outcomes in the lake.
    "window": timedelta(minutes=5),
    "select_orgs": timedelta(minutes=5),
    "targets": timedelta(minutes=5),
    "publish": timedelta(minutes=5),
    "summary": timedelta(minutes=5),
    # One shard's orgs, four at a time: minutes normally. The bound leaves one org room for
    # its worst case: a wait for one of its Salesforce slots (org_slots), a CRM refresh
    # and a load each polling a Bulk job for the whole job timeout (SalesforceClient), and
    # the calls between given up after every retry. A timed-out attempt is retried and
    # syncs only the orgs it had not finished (shard_run).
    "sync": timedelta(hours=6),
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


# The XCom key under which a failing task records its error (task_failures.py).
FAILURE_XCOM = "failure"


@contextmanager
def recording_failure(context: Any, task: str | None = None) -> Iterator[None]:
    """Record the error of a task that fails for the run's closing task to name it.

    Args:
        context: the running task's Airflow context.
        task: how the closing message names the task (default: its task id).
    """
    from activity_sync.task_failures import failure_record

    try:
        yield
    except BaseException as exc:
        ti = context["ti"]
        try:
            ti.xcom_push(key=FAILURE_XCOM, value=failure_record(task or ti.task_id, exc))
        except Exception:  # the task's own error matters more than this record of it
            logging.getLogger(__name__).exception("could not record the task's failure")
        raise


def recorded_failures(context: Any, task_id: str) -> list[dict[str, Any]]:
    """The failures ``recording_failure`` recorded for ``task_id`` (every map index)."""
    from activity_sync.task_failures import as_records

    return as_records(context["ti"].xcom_pull(task_ids=task_id, key=FAILURE_XCOM))


def failed_before_orgs(context: Any) -> list[dict[str, Any]]:
    """The hourly run's ``window`` and ``select_orgs`` that failed (returned nothing), each
    with its recorded error (None when it recorded none)."""
    from activity_sync.task_failures import ERROR, TASK

    ti = context["ti"]
    failed = []
    for task_id in ("window", "select_orgs"):
        if ti.xcom_pull(task_ids=task_id) is None:
            recorded = recorded_failures(context, task_id)
            failed.extend(recorded or [{TASK: task_id, ERROR: None}])
    return failed


def audit_run_failures(context: Any, audited: int) -> list[dict[str, Any]]:
    """The audit run's failed tasks (``targets``, mapped ``audit``) with their errors.

    Args:
        context: the closing task's context.
        audited: how many mapped ``audit`` tasks returned a result.
    """
    from activity_sync.task_failures import audit_failures

    targets = context["ti"].xcom_pull(task_ids="targets")
    recorded = recorded_failures(context, "targets") + recorded_failures(context, "audit")
    return audit_failures(targets, audited, recorded)


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


def sync_shard_task(shard: dict[str, Any], window: dict[str, str], context: Any) -> dict[str, Any]:
    """The hourly DAG's ``sync`` task: one shard's orgs, and what Airflow makes of them.

    Every org that fails is recorded in the lake and the others go on
    (``shard_run.sync_shard``). Then: orgs over their API budget → the task is rescheduled
    (its worker slot freed) to check again in ``BUDGET_RECHECK``; orgs that failed → the
    task fails naming them, retryably when a retry can help (a retry syncs only the orgs
    that did not finish); otherwise it returns each org's result for XCom.
    """
    from datetime import UTC, datetime

    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowRescheduleException,
    )

    from activity_sync.converge import DEFAULT_MAX_DELETE_SHARE
    from activity_sync.org_slots import slots_from_env
    from activity_sync.shard_run import BUDGET_RECHECK, Attempt, sync_shard
    from activity_sync.shards import Shard

    run = run_identity(context["dag_run"])
    attempt = Attempt(
        run=run,
        key=f"{run}|{context['ti'].max_tries}",
        dry_run=bool(context["params"].get("dry_run")),
        replan=bool(context["params"].get("replan")),
        max_delete_share=float(
            _or_default(context["params"].get("max_delete_share"), DEFAULT_MAX_DELETE_SHARE)
        ),
    )
    result = sync_shard(
        Shard.from_dict(shard),
        root=lake_root(),
        start=datetime.fromisoformat(window["start"]),
        end=datetime.fromisoformat(window["end"]),
        attempt=attempt,
        client_for=salesforce_client,
        slots=slots_from_env(),
        # An org whose connection Airflow does not know: a retry finds it missing again.
        permanent=(AirflowNotFoundException,),
    )
    if result.waiting:
        raise AirflowRescheduleException(datetime.now(UTC) + BUDGET_RECHECK)
    if result.failed:
        error = AirflowException if result.retry_can_help else AirflowFailException
        raise error(result.failure_message())
    return {"shard": shard["label"], "orgs": result.summary()}


def _or_default(value: Any, default: Any) -> Any:
    """A param's value, or the default when the form left it empty."""
    return default if value is None else value


def run_identity(dag_run: Any) -> str:
    """This run of the hour, told apart from earlier runs with the same id (a re-run, a
    cleared run): its id, start and clear count."""
    return f"{dag_run.run_id}|{dag_run.start_date}|{dag_run.clear_number}"


def run_outcomes_from_context(context: Any) -> tuple[dict | None, list | None, dict | None]:
    """``(window, shards, outcomes)`` of the running DAG run, for the tasks after ``sync``.

    Read from the ``window`` and ``select_orgs`` XComs and the lake; ``shards`` and
    ``outcomes`` are None when either task failed (there are then no orgs to speak of).
    """
    from datetime import datetime

    from activity_sync.shards import Shard, run_outcomes

    ti = context["ti"]
    window = ti.xcom_pull(task_ids="window")
    raw = ti.xcom_pull(task_ids="select_orgs")
    if not window or raw is None:
        return window, None, None
    shards = [Shard.from_dict(s) for s in raw]
    start = datetime.fromisoformat(window["start"])
    outcomes = run_outcomes(lake_root(), shards, start, run_identity(context["dag_run"]))
    return window, shards, outcomes
