"""One shard's hour: each org's steps, isolated, resumable, within its Salesforce slots.

Per org, the hourly steps of ``steps.py`` in order: extract → refresh_crm → detect → plan →
budget → load. Every step that calls Salesforce holds one of the org's own slots
(``org_slots``). An org that fails is recorded (step, error, whether a retry can help) and
the shard goes on with the others; an org over its API budget is left waiting, planned.
Orgs run :data:`SHARD_THREADS` at a time: most of a small org's hour is spent waiting for
Salesforce (Bulk jobs are polled), not computing.

What a retry, a reschedule or a clear does, through the outcomes in the lake
(``shards``): an *attempt* is one run of the shard's task instance as Airflow counts
them, that is the run (its id, start and clear count) and the task instance's
``max_tries`` (which a clear raises and a retry keeps). Within one attempt, an org that
finished is not synced again, a waiting org goes straight back to the budget check, and an
org that failed is synced again from its first step unless a retry cannot help. A new
attempt (a new run of the hour, a cleared run or task) syncs every org again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from activity_sync import steps
from activity_sync.converge import DEFAULT_MAX_DELETE_SHARE
from activity_sync.org_slots import SlotBackend, org_slot
from activity_sync.salesforce import SalesforceClient
from activity_sync.shards import DONE, OrgStatus, Shard, read_outcome, write_outcome
from activity_sync.tenants import Org

log = logging.getLogger(__name__)

# Orgs of a shard synced at once. Their steps mostly wait on Salesforce; more threads would
# only queue on the worker's CPU and on the orgs' own slots.
SHARD_THREADS = 4
# While an org is over its API budget the shard looks again this often, freeing its worker
# slot in between, and gives up on the org after BUDGET_MAX_WAIT.
BUDGET_RECHECK = timedelta(minutes=15)
BUDGET_MAX_WAIT = timedelta(hours=24)


@dataclass(frozen=True)
class Attempt:
    """Which attempt of the shard's task this is, and what it was asked to do.

    Attributes:
        run: this run of the hour (``airflow_adapter.run_identity``: id, start, clear count).
        key: ``run`` and the task instance's ``max_tries``: equal for a retry or reschedule
            of the same attempt, different after a clear or in another run of the hour.
        dry_run: plan, but do not load.
        replan: plan against today's CRM, settings and mode, then converge Salesforce to
            the new plan (``steps.step_plan``, ``steps.step_load``).
        max_delete_share: the most of an hour's earlier Tasks a re-plan may delete.
    """

    run: str
    key: str
    dry_run: bool = False
    replan: bool = False
    max_delete_share: float = DEFAULT_MAX_DELETE_SHARE


@dataclass
class ShardResult:
    """Every org's outcome after one pass over the shard, by org_id, in shard order."""

    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def with_status(self, *statuses: OrgStatus) -> dict[str, dict[str, Any]]:
        return {o: v for o, v in self.outcomes.items() if v["status"] in statuses}

    @property
    def waiting(self) -> dict[str, dict[str, Any]]:
        return self.with_status(OrgStatus.WAITING)

    @property
    def failed(self) -> dict[str, dict[str, Any]]:
        return self.with_status(OrgStatus.FAILED)

    @property
    def retry_can_help(self) -> bool:
        """Some failed org failed in a way that a later try may not (Salesforce down...)."""
        return any(v["error"]["retryable"] for v in self.failed.values())

    def failure_message(self) -> str:
        """Names each failed org with its step and error: the task's failure message."""
        lines = [
            f"{org_id}: {v['error']['step']}: {v['error']['message']}"
            for org_id, v in self.failed.items()
        ]
        return f"{len(lines)} of {len(self.outcomes)} org(s) failed: " + "; ".join(lines)

    def summary(self) -> dict[str, dict[str, Any]]:
        """A small per-org view for XCom and the log: status, counts, the error."""
        view = {}
        for org_id, v in self.outcomes.items():
            plan, load = v["steps"].get("plan") or {}, v["steps"].get("load") or {}
            view[org_id] = {
                "status": str(v["status"]),
                "events": plan.get("events"),
                "tasks_planned": plan.get("tasks"),
                "tasks_created": load.get("tasks_created"),
                "tasks_updated": load.get("tasks_updated"),
                "api_calls": v.get("api_calls"),
                "error": (v.get("error") or {}).get("message"),
            }
        return view


def retry_can_help(exc: BaseException, permanent: tuple[type[BaseException], ...] = ()) -> bool:
    """Whether a retry may succeed where ``exc`` failed: the DAG's own rule
    (``steps.fails_at_once``: mistakes in configuration or input fail at once, passing
    failures and an org's slots staying busy heal), plus the ``permanent`` errors the caller
    names (Airflow not knowing a connection)."""
    return not (steps.fails_at_once(exc) or isinstance(exc, permanent))


def sync_shard(
    shard: Shard,
    *,
    root: Any,
    start: datetime,
    end: datetime,
    attempt: Attempt,
    client_for: Callable[[str], SalesforceClient],
    slots: SlotBackend,
    permanent: tuple[type[BaseException], ...] = (),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    threads: int = SHARD_THREADS,
) -> ShardResult:
    """Sync the hour ``[start, end)`` of every org of ``shard`` once; never raises for an org.

    Args:
        shard: the orgs.
        root: the lake root.
        start, end: the run's interval.
        attempt: which attempt this is (what to resume) and whether it is a dry run.
        client_for: opens a Salesforce client for a connection id.
        slots: where the orgs' Salesforce slots live.
        permanent: errors beyond the product's own that a retry cannot fix
            (:func:`retry_can_help`).
        now: the clock (budget waits are dated with it).
        threads: orgs synced at once.

    Returns:
        Each org's outcome (also written to the lake); the caller decides what the task
        does with waiting and failed orgs.
    """
    lock = threading.Lock()
    result = ShardResult()

    def one(org: Org) -> None:
        outcome = _sync_org(org, root, start, end, attempt, client_for, slots, permanent, now)
        with lock:
            result.outcomes[org.org_id] = outcome

    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="org") as pool:
        for future in [pool.submit(one, org) for org in shard.orgs]:
            future.result()  # _sync_org records every error; this re-raises only a bug
    result.outcomes = {o: result.outcomes[o] for o in shard.org_ids}
    counts = {s: len(result.with_status(s)) for s in OrgStatus if result.with_status(s)}
    log.info("shard %s: %s", shard.label, ", ".join(f"{n} {s}" for s, n in counts.items()))
    return result


def _resumable(previous: Mapping[str, Any] | None, attempt: Attempt) -> bool:
    return bool(previous) and previous.get("attempt") == attempt.key


def _sync_org(
    org: Org,
    root: Any,
    start: datetime,
    end: datetime,
    attempt: Attempt,
    client_for: Callable[[str], SalesforceClient],
    slots: SlotBackend,
    permanent: tuple[type[BaseException], ...],
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """One org's hour, from where this attempt left it; returns (and writes) its outcome."""
    previous = read_outcome(root, org.org_id, start)
    if _resumable(previous, attempt):
        status = previous["status"]
        if status in DONE or (status == OrgStatus.FAILED and not previous["error"]["retryable"]):
            return previous
    else:
        previous = None
    waiting = previous if previous and previous["status"] == OrgStatus.WAITING else None
    outcome: dict[str, Any] = {
        "org_id": org.org_id,
        "interval_start": start.isoformat(),
        "interval_end": end.isoformat(),
        "run": attempt.run,
        "attempt": attempt.key,
        "dry_run": attempt.dry_run,
        "replan": attempt.replan,
        "status": OrgStatus.RUNNING,
        "steps": dict(waiting["steps"]) if waiting else {},
        "waiting_since": waiting["waiting_since"] if waiting else None,
        "error": None,
        "started_at": now().isoformat(),
    }
    write_outcome(root, org.org_id, start, outcome)
    client: SalesforceClient | None = None
    step = "extract"

    def salesforce(name: str, fn: Callable[[SalesforceClient], dict]) -> dict:
        nonlocal client, step
        step = name
        client = client or client_for(org.salesforce_conn_id)
        with org_slot(slots, org.org_id, org.salesforce_concurrency, f"{name} of {org.org_id}"):
            return fn(client)

    done = outcome["steps"]
    try:
        if "plan" not in done:
            done["extract"] = steps.step_extract(org, root, start, end)
            done["refresh_crm"] = salesforce(
                "refresh_crm", lambda c: steps.step_refresh_crm(org, c, root)
            )
            caps = salesforce("detect", lambda c: steps.step_detect(org, c))
            done["detect"] = caps
            step = "plan"
            done["plan"] = steps.step_plan(org, root, start, caps, end=end, replan=attempt.replan)
        if attempt.dry_run:
            done["preview"] = salesforce(
                "preview",
                lambda c: steps.step_preview(
                    org,
                    c,
                    root,
                    start,
                    replan=attempt.replan,
                    max_delete_share=attempt.max_delete_share,
                ),
            )
            outcome["status"] = OrgStatus.PLANNED
        else:
            budget = salesforce("budget", lambda c: steps.step_budget(org, c))
            done["budget"] = budget
            if budget["exhausted"]:
                _wait_for_budget(outcome, budget, now())
            else:
                done["load"] = salesforce(
                    "load",
                    lambda c: steps.step_load(
                        org,
                        c,
                        root,
                        start,
                        replan=attempt.replan,
                        max_delete_share=attempt.max_delete_share,
                    ),
                )
                outcome["status"] = OrgStatus.LOADED
    except Exception as exc:  # one org's failure must not stop the shard
        log.exception("org %s failed in %s", org.org_id, step)
        outcome["status"] = OrgStatus.FAILED
        outcome["error"] = {
            "step": step,
            "type": type(exc).__name__,
            "message": str(exc) or type(exc).__name__,
            "retryable": retry_can_help(exc, permanent),
        }
    outcome["api_calls"] = client.total_calls if client else 0
    outcome["finished_at"] = now().isoformat()
    write_outcome(root, org.org_id, start, outcome)
    _log_outcome(org.org_id, outcome)
    return outcome


def _wait_for_budget(outcome: dict[str, Any], budget: Mapping[str, Any], at: datetime) -> None:
    since = datetime.fromisoformat(outcome["waiting_since"] or at.isoformat())
    outcome["waiting_since"] = since.isoformat()
    if at - since >= BUDGET_MAX_WAIT:
        outcome["status"] = OrgStatus.FAILED
        outcome["error"] = {
            "step": "budget",
            "type": "BudgetExhausted",
            "message": f"API budget still exhausted after {BUDGET_MAX_WAIT}: {budget['message']}",
            "retryable": False,
        }
        return
    outcome["status"] = OrgStatus.WAITING
    log.warning("org %s is over its API budget, waiting: %s", outcome["org_id"], budget["message"])


def _log_outcome(org_id: str, outcome: Mapping[str, Any]) -> None:
    plan, load = outcome["steps"].get("plan") or {}, outcome["steps"].get("load") or {}
    if outcome["status"] == OrgStatus.FAILED:
        error = outcome["error"]
        log.error("org %s: failed in %s: %s", org_id, error["step"], error["message"])
        return
    log.info(
        "org %s: %s, %s events, %s Tasks planned, %s created, %s updated, %s API calls",
        org_id,
        outcome["status"],
        plan.get("events", "?"),
        plan.get("tasks", "?"),
        load.get("tasks_created", "-"),
        load.get("tasks_updated", "-"),
        outcome["api_calls"],
    )
