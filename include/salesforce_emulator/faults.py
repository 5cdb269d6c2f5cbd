"""Injected failures, so that tests can prove the pipeline survives a misbehaving Salesforce.

Set with ``POST /__emulator/faults`` (``EmulatorProcess.set_faults(**settings)``; settings
left out are off):

- ``http_503_rate``, ``request_limit_rate``, ``expired_session_rate``: the share of counted
  API calls answered 503, 403 ``REQUEST_LIMIT_EXCEEDED`` or 401 ``INVALID_SESSION_ID``. An
  expired session stays expired: every later call with that token fails too, until the
  client logs in again (``auth``).
- ``row_lock_rate``: the share of Bulk ingest rows that fail ``UNABLE_TO_LOCK_ROW``.
- ``failed_job_rate``: the share of Bulk ingest jobs that end ``Failed`` part way, as when
  an internal batch fails ten retries: the chunks before the failure are applied and in
  the successful/failed results, the rest is in the unprocessed results.
- ``slow_bulk_seconds``: every Bulk job waits this long in ``InProgress`` before it starts.
- ``chunk_seconds``: each 200-row chunk of an ingest job waits this long between reading
  which records exist and writing, so that overlapping jobs race as in Salesforce.
- ``start_together``: the next this-many Bulk ingest jobs wait for each other and start
  their first chunk at the same moment (once; a group not filled in 60 s starts anyway),
  so that a test's two loads overlap however busy the machine is.

Draws come from generators seeded by ``seed``: the n-th counted call after the faults were
set always gets the same verdict, and the n-th Bulk ingest job to start the same failing
rows and fate, so a test run is repeatable (with parallel workers, which job starts n-th
can vary).
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

# How long a ``start_together`` group waits to fill before its jobs start anyway.
START_GROUP_TIMEOUT = 60.0

# The faults a call or a row can get; also the keys of the ``injected`` counts in stats.
UNAVAILABLE = "503"
REQUEST_LIMIT = "limit"
EXPIRED_SESSION = "expired"
ROW_LOCK = "row_lock"
FAILED_JOB = "failed_job"


class FaultConfigError(ValueError):
    pass


@dataclass(frozen=True)
class IngestFate:
    """One ingest job's faults: rows that fail to lock, and the chunk it fails at (or None)."""

    locked: np.ndarray
    fail_at: int | None


@dataclass(frozen=True)
class FaultConfig:
    seed: int = 0
    http_503_rate: float = 0.0
    request_limit_rate: float = 0.0
    expired_session_rate: float = 0.0
    slow_bulk_seconds: float = 0.0
    row_lock_rate: float = 0.0
    failed_job_rate: float = 0.0
    chunk_seconds: float = 0.0
    start_together: int = 0

    @classmethod
    def parse(cls, raw: Any) -> FaultConfig:
        if not isinstance(raw, dict):
            raise FaultConfigError("faults must be a JSON object")
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise FaultConfigError(f"unknown fault setting {unknown[0]!r}")
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FaultConfigError(f"fault setting {key!r} must be a number")
            if key == "seed" and not isinstance(value, int):
                raise FaultConfigError("fault setting 'seed' must be an integer")
            if key.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise FaultConfigError(f"fault setting {key!r} must be between 0 and 1")
            if key.endswith("_seconds") and value < 0:
                raise FaultConfigError(f"fault setting {key!r} must not be negative")
            if key == "start_together" and (not isinstance(value, int) or value < 0):
                raise FaultConfigError(
                    "fault setting 'start_together' must be a whole number, 0 or more"
                )
        config = cls(**raw)
        call_total = config.http_503_rate + config.request_limit_rate + config.expired_session_rate
        if call_total > 1.0:
            raise FaultConfigError("the call fault rates must add up to at most 1")
        return config

    @classmethod
    def load(cls, path: str | Path) -> FaultConfig:
        try:
            return cls.parse(json.loads(Path(path).read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise FaultConfigError(f"faults file {path} is not valid JSON: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    """The active configuration and its random streams."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._group = threading.Condition()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._calls = np.random.default_rng([config.seed, 1])
            self._jobs = 0
            self.injected: dict[str, int] = {}
        with self._group:
            self._group_missing = config.start_together
            self._group.notify_all()

    def start_with_group(self, timeout: float = START_GROUP_TIMEOUT) -> None:
        """Hold an ingest job until the ``start_together`` group is full, then let all go."""
        with self._group:
            if self._group_missing <= 0:
                return
            self._group_missing -= 1
            if self._group_missing == 0:
                self._group.notify_all()
                return
            if not self._group.wait_for(lambda: self._group_missing <= 0, timeout):
                self._group_missing = 0
                self._group.notify_all()

    def for_call(self) -> str | None:
        """The fault to answer this counted call with, or None for no fault."""
        c = self.config
        if not (c.http_503_rate or c.request_limit_rate or c.expired_session_rate):
            return None
        with self._lock:
            draw = self._calls.random()
            verdict = None
            if draw < c.http_503_rate:
                verdict = UNAVAILABLE
            elif draw < c.http_503_rate + c.request_limit_rate:
                verdict = REQUEST_LIMIT
            elif draw < c.http_503_rate + c.request_limit_rate + c.expired_session_rate:
                verdict = EXPIRED_SESSION
            if verdict:
                self.injected[verdict] = self.injected.get(verdict, 0) + 1
            return verdict

    def for_ingest_job(self, rows: int, chunks: int) -> IngestFate:
        """The faults of the next Bulk ingest job to start, of ``rows`` rows in ``chunks``."""
        with self._lock:
            self._jobs += 1
            job = self._jobs
            config = self.config
        locked = np.zeros(rows, dtype=bool)
        if config.row_lock_rate and rows:
            draws = np.random.default_rng([config.seed, 2, job]).random(rows)
            locked = draws < config.row_lock_rate
        fail_at = None
        if config.failed_job_rate:
            draw = np.random.default_rng([config.seed, 3, job])
            if draw.random() < config.failed_job_rate:
                fail_at = int(draw.integers(0, max(chunks, 1)))
        with self._lock:
            if locked.any():
                self.injected[ROW_LOCK] = self.injected.get(ROW_LOCK, 0) + int(locked.sum())
            if fail_at is not None:
                self.injected[FAILED_JOB] = self.injected.get(FAILED_JOB, 0) + 1
        return IngestFate(locked, fail_at)

    @property
    def slow_bulk_seconds(self) -> float:
        return self.config.slow_bulk_seconds

    @property
    def chunk_seconds(self) -> float:
        return self.config.chunk_seconds
