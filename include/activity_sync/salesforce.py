"""Talking to Salesforce: counted, retried calls, REST queries, and re-login.

Built on a ``simple_salesforce.Salesforce`` client (what ``SalesforceHook.get_conn()``
returns). Every call is counted (the API budget is the product's concern), transient
failures are retried with backoff, an expired session logs in again, and results are
DataFrames. Bulk API 2.0 jobs and sObject Collections writes come from the mixins
:class:`~activity_sync.bulk.BulkJobs` and :class:`~activity_sync.record_writes.RecordWrites`.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
import requests

from activity_sync.bulk import BulkJobFailed as BulkJobFailed
from activity_sync.bulk import BulkJobs
from activity_sync.bulk import IngestResult as IngestResult
from activity_sync.errors import ActivitySyncError
from activity_sync.record_writes import RecordWrites
from activity_sync.transport import HttpTimeouts, is_transient, session_timeouts, with_timeouts

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

log = logging.getLogger(__name__)
T = TypeVar("T")


class SalesforceUnavailable(ActivitySyncError, RuntimeError):
    """Transient failures persisted past every retry; the task should be retried later."""


class SalesforceClient(BulkJobs, RecordWrites):
    """One org's Salesforce API, with call counting, retries and re-login.

    Every request is bounded by the connect and read timeouts of the session the factory
    returns (:mod:`activity_sync.transport`); a session without any gets the defaults.
    A timeout, like any transient failure, is retried with backoff, the login included.
    """

    def __init__(
        self,
        connect: Callable[[], Salesforce],
        *,
        poll_wait: float = 2.0,
        max_attempts: int = 6,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        job_timeout: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connect = connect
        self.poll_wait = poll_wait
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.job_timeout = job_timeout
        self.sleep = sleep
        self.calls: Counter[str] = Counter()
        self.bulk_jobs = 0
        self.sf: Salesforce = self._retrying("log in", self._login)

    # --- plumbing -----------------------------------------------------------------

    def _login(self) -> Salesforce:
        """A fresh, logged-in client from the factory, its session bounded by timeouts.

        The factory's session should carry them already (the Airflow adapter mounts the
        connection's before logging in); one that has none gets the defaults here, so no
        later request can wait forever.
        """
        sf = self._connect()
        if session_timeouts(sf.session) is None:
            log.info("the Salesforce session has no timeouts; using the defaults")
            with_timeouts(sf.session, HttpTimeouts())
        return sf

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``; on a transient failure back off (with jitter) and try again.

        After an expired session the next attempt logs in first; a login that fails
        transiently is retried like the call itself.
        """
        from simple_salesforce.exceptions import SalesforceExpiredSession

        relogin = False
        for attempt in range(1, self.max_attempts + 1):
            try:
                if relogin:
                    self.calls["login"] += 1
                    self.sf = self._login()
                    relogin = False
                return fn()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if attempt == self.max_attempts:
                    raise SalesforceUnavailable(
                        f"{what}: still failing after {attempt} attempts: {exc}"
                    ) from exc
                delay = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
                delay *= 0.5 + random.random() / 2
                log.warning("%s failed (%s); retry %d in %.1fs", what, exc, attempt, delay)
                self.sleep(delay)
                relogin = relogin or isinstance(exc, SalesforceExpiredSession)
        raise AssertionError("unreachable")

    def _http(self, method: str, url: str, kind: str, **kwargs: Any) -> requests.Response:
        from simple_salesforce.util import call_salesforce

        headers = {
            "Authorization": f"Bearer {self.sf.session_id}",
            "X-PrettyPrint": "1",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        headers.update(kwargs.pop("headers", {}))
        self.calls[kind] += 1
        return call_salesforce(url, method, self.sf.session, headers, **kwargs)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    # --- REST ---------------------------------------------------------------------

    def describe(self, object_name: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            self.calls["describe"] += 1
            return getattr(self.sf, object_name).describe()

        return self._retrying(f"describe {object_name}", run)

    def describe_global(self) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            self.calls["describe"] += 1
            return self.sf.describe()

        return self._retrying("describe global", run)

    def limits(self) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            self.calls["limits"] += 1
            return self.sf.limits()

        return self._retrying("limits", run)

    def query(self, soql: str, *, include_deleted: bool = False) -> pd.DataFrame:
        """REST query following nextRecordsUrl; one counted call per page of 2,000."""
        records: list[dict[str, Any]] = []

        def first() -> dict[str, Any]:
            self.calls["query"] += 1
            return self.sf.query(soql, include_deleted=include_deleted)

        page = self._retrying("query", first)
        records.extend(page["records"])
        while not page["done"]:
            url = page["nextRecordsUrl"]

            def more(url: str = url) -> dict[str, Any]:
                self.calls["query"] += 1
                return self.sf.query_more(
                    url, identifier_is_url=True, include_deleted=include_deleted
                )

            page = self._retrying("query more", more)
            records.extend(page["records"])
        frame = pd.DataFrame.from_records(records)
        return frame.drop(columns=["attributes"], errors="ignore")
