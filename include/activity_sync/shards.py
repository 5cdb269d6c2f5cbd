"""How the hourly DAG groups orgs into task instances, and what each org's hour came to.

A task instance costs the scheduler and a worker about 1.5 CPU seconds whatever it does
(README "Performance"): seven per org made 300 orgs' hour take most of an hour on two
cores. So small orgs share a task instance, in **shards** of ``shard_size`` (orgs file,
default 25), and an org marked ``dedicated`` (a big one) gets a shard of its own. Inside
a shard each org runs its own steps (``shard_run``); one org failing is recorded and the
shard goes on.

Each org's hour ends in an **outcome**, written to ``sync/org_id=…/date=…/hour=…/
outcome.json`` in the lake: its status, each step's result and, when it failed, the step,
the error and whether a retry can help. The DAG's ``publish`` and ``summary`` tasks read
outcomes (a failed task instance leaves no XCom), and a retried shard reads them to skip
the orgs it already finished.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from activity_sync import lake
from activity_sync.tenants import Org


class OrgStatus(StrEnum):
    """Where an org's hour stands (``outcome.json``'s ``status``)."""

    RUNNING = "running"  # started, not finished: its task is running or died
    LOADED = "loaded"
    PLANNED = "planned"  # a dry run: planned, deliberately not loaded
    WAITING = "waiting_for_budget"  # planned; loads once the org is back under its API budget
    FAILED = "failed"


DONE = frozenset({OrgStatus.LOADED, OrgStatus.PLANNED})


@dataclass(frozen=True)
class Shard:
    """Orgs synced by one task instance, in orgs-file order."""

    orgs: tuple[Org, ...]

    @property
    def org_ids(self) -> list[str]:
        return [o.org_id for o in self.orgs]

    @property
    def key(self) -> str:
        """Stable while the same orgs share the shard; names it in messages and logs."""
        return hashlib.sha256("\n".join(self.org_ids).encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """The task instance's name in the UI (its map index label)."""
        if len(self.orgs) == 1:
            return self.orgs[0].org_id
        return f"{self.orgs[0].org_id} … {self.orgs[-1].org_id} ({len(self.orgs)} orgs)"

    def to_dict(self) -> dict[str, Any]:
        """What travels through XCom to the shard's task instance."""
        return {"key": self.key, "label": self.label, "orgs": [o.to_dict() for o in self.orgs]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Shard:
        return cls(tuple(Org.from_dict(o) for o in raw["orgs"]))


def make_shards(orgs: Sequence[Org], shard_size: int) -> list[Shard]:
    """Cut ``orgs`` into shards: each dedicated org alone, the others ``shard_size`` at a time.

    Dedicated orgs come first: they take longest, and Airflow starts mapped task instances
    roughly in map-index order, so starting them first shortens the hour.

    Args:
        orgs: the run's orgs (``steps.select_orgs``), in orgs-file order.
        shard_size: at most this many orgs per shared shard (>= 1).

    Returns:
        The shards, none empty; an empty list for no orgs.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    small = [o for o in orgs if not o.dedicated]
    return [Shard((o,)) for o in orgs if o.dedicated] + [
        Shard(tuple(small[i : i + shard_size])) for i in range(0, len(small), shard_size)
    ]


# --- outcomes -------------------------------------------------------------------------


def outcome_path(root: Any, org_id: str, start: datetime) -> Any:
    return lake.partition(root, lake.SYNC, org_id, start) / lake.SYNC_OUTCOME


def read_outcome(root: Any, org_id: str, start: datetime) -> dict[str, Any] | None:
    """The org's outcome of the hour starting at ``start``, or None if it has none (yet).

    An unreadable file counts as none: the org is then synced again, which is safe (R11).
    """
    path = outcome_path(root, org_id, start)
    try:
        with path.open("r", encoding="utf-8") as reader:
            outcome = json.load(reader)
    except (OSError, ValueError):
        return None
    return outcome if isinstance(outcome, dict) else None


def write_outcome(root: Any, org_id: str, start: datetime, outcome: Mapping[str, Any]) -> None:
    path = outcome_path(root, org_id, start)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as writer:
        json.dump(outcome, writer, indent=2, sort_keys=True, default=str)


def run_outcomes(
    root: Any, shards: Iterable[Shard], start: datetime, run: str
) -> dict[str, dict[str, Any] | None]:
    """Every org's outcome of this run, by org_id; None where this run recorded none.

    Args:
        root: the lake root.
        shards: the run's shards.
        start: the run's interval start.
        run: the run (``airflow_adapter.run_identity``); an outcome of another run of
            the same hour is not this run's: the org's shard died before reaching it, or
            never started.
    """
    found: dict[str, dict[str, Any] | None] = {}
    for shard in shards:
        for org_id in shard.org_ids:
            outcome = read_outcome(root, org_id, start)
            found[org_id] = outcome if outcome and outcome.get("run") == run else None
    return found


def describe_failure(outcome: Mapping[str, Any] | None, shard: Shard) -> str:
    """One line for a failed (or never recorded) org: the step, the error, the task to read."""
    where = f"task sync [{shard.label}]"
    if outcome is None:
        return f"no outcome recorded: {where} failed before reaching it; its log says why"
    if outcome.get("status") == OrgStatus.RUNNING:
        return f"did not finish: {where} died while syncing it; its log says why"
    error = outcome.get("error") or {}
    return f"{error.get('step', '?')}: {error.get('message', '?')} (see {where})"
