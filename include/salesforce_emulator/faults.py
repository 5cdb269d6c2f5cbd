"""Injected failures, so that tests can prove the pipeline survives a misbehaving Salesforce.

Rates apply to counted API calls (503, ``REQUEST_LIMIT_EXCEEDED``, expired session) and to
Bulk ingest rows (``UNABLE_TO_LOCK_ROW``). Draws come from generators seeded by ``seed``:
the n-th counted call after the faults were set always gets the same verdict, and the
n-th Bulk job the same failing rows, so a test run is repeatable.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

# The faults a call or a row can get; also the keys of the ``injected`` counts in stats.
UNAVAILABLE = "503"
REQUEST_LIMIT = "limit"
EXPIRED_SESSION = "expired"
ROW_LOCK = "row_lock"


class FaultConfigError(ValueError):
    pass


@dataclass(frozen=True)
class FaultConfig:
    seed: int = 0
    http_503_rate: float = 0.0
    request_limit_rate: float = 0.0
    expired_session_rate: float = 0.0
    slow_bulk_seconds: float = 0.0
    row_lock_rate: float = 0.0

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
            if key == "slow_bulk_seconds" and value < 0:
                raise FaultConfigError("fault setting 'slow_bulk_seconds' must not be negative")
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
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._calls = np.random.default_rng([config.seed, 1])
            self._jobs = 0
            self.injected: dict[str, int] = {}

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

    def locked_rows(self, count: int) -> np.ndarray:
        """Which of a Bulk job's ``count`` rows fail with UNABLE_TO_LOCK_ROW."""
        with self._lock:
            self._jobs += 1
            job = self._jobs
            rate = self.config.row_lock_rate
        if not rate or not count:
            return np.zeros(count, dtype=bool)
        hits = np.random.default_rng([self.config.seed, 2, job]).random(count) < rate
        with self._lock:
            self.injected[ROW_LOCK] = self.injected.get(ROW_LOCK, 0) + int(hits.sum())
        return hits

    @property
    def slow_bulk_seconds(self) -> float:
        return self.config.slow_bulk_seconds
