"""The daily API allowance and call statistics: what ``/limits`` and ``Sforce-Limit-Info`` show.

Every authenticated REST and Bulk call counts against ``DailyApiRequests``; when the
allowance is used up, calls get 403 ``REQUEST_LIMIT_EXCEEDED`` as in Salesforce. The day is
the UTC calendar day (Salesforce uses a rolling 24 hours). Counts are kept in memory and
saved to the database now and then and at shutdown, so a restart keeps the day's usage.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from salesforce_emulator.store import Store

DEFAULT_API_LIMIT = 100_000
BULK_BATCH_LIMIT = 15_000
BULK_QUERY_JOB_LIMIT = 10_000


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


class Usage:
    def __init__(self, store: Store, api_limit: int = DEFAULT_API_LIMIT) -> None:
        self.store = store
        self.api_limit = api_limit
        self._lock = threading.Lock()
        saved = store.get_meta("usage") or {}
        self.day = saved.get("day", _today())
        self.api_calls = saved.get("api_calls", 0)
        self.bulk_batches = saved.get("bulk_batches", 0)
        self.bulk_query_jobs = saved.get("bulk_query_jobs", 0)
        self.by_route: Counter[str] = Counter(saved.get("by_route", {}))
        self.refused: Counter[str] = Counter(saved.get("refused", {}))
        self._roll()

    def _roll(self) -> None:
        today = _today()
        if today != self.day:
            self.day = today
            self.api_calls = self.bulk_batches = self.bulk_query_jobs = 0

    def exhausted(self) -> bool:
        with self._lock:
            self._roll()
            return self.api_calls >= self.api_limit

    def count(self, route: str) -> None:
        with self._lock:
            self._roll()
            self.api_calls += 1
            self.by_route[route] += 1

    def refuse(self, reason: str) -> None:
        """A call turned away before it ran (limit, injected fault): counted apart."""
        with self._lock:
            self.refused[reason] += 1

    def add_bulk_batches(self, n: int) -> None:
        with self._lock:
            self.bulk_batches += n

    def add_bulk_query_job(self) -> None:
        with self._lock:
            self.bulk_query_jobs += 1

    def header(self) -> str:
        """``Sforce-Limit-Info``: simple-salesforce reads ``api-usage=USED/MAX`` from its start."""
        return f"api-usage={self.api_calls}/{self.api_limit}"

    def limits(self) -> dict[str, dict[str, int]]:
        def entry(maximum: int, used: int) -> dict[str, int]:
            return {"Max": maximum, "Remaining": max(maximum - used, 0)}

        with self._lock:
            self._roll()
            return {
                "DailyApiRequests": entry(self.api_limit, self.api_calls),
                "DailyBulkApiBatches": entry(BULK_BATCH_LIMIT, self.bulk_batches),
                "DailyBulkV2QueryJobs": entry(BULK_QUERY_JOB_LIMIT, self.bulk_query_jobs),
                "DailyBulkV2QueryFileStorageMB": entry(976_562, 0),
                "DataStorageMB": entry(1024, 0),
                "FileStorageMB": entry(1024, 0),
                "ConcurrentAsyncGetReportInstances": entry(200, 0),
                "HourlyODataCallout": entry(10_000, 0),
            }

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "day": self.day,
                "api_calls": self.api_calls,
                "api_limit": self.api_limit,
                "bulk_batches": self.bulk_batches,
                "bulk_query_jobs": self.bulk_query_jobs,
                "by_route": dict(self.by_route),
                "refused": dict(self.refused),
            }

    def save(self) -> None:
        state = self.snapshot()
        state.pop("api_limit")
        self.store.set_meta("usage", state)

    def zero(self) -> None:
        with self._lock:
            self.day = _today()
            self.api_calls = self.bulk_batches = self.bulk_query_jobs = 0
            self.by_route.clear()
            self.refused.clear()
        self.save()
