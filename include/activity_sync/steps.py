"""The steps of the hourly DAG, as its tasks call them: one function per task.

``resolve_interval`` → ``select_orgs``, then per org (``shard_run`` runs them, a shard of
orgs per task) ``step_extract`` → ``step_refresh_crm`` → ``step_detect`` → ``step_plan`` →
``step_budget`` → ``step_load`` (a dry run: ``step_preview``; both in ``load_step.py``),
then ``step_publish`` and ``step_summary`` once per run. The audit DAG's steps are in
``audit_steps.py`` (it shares ``select_orgs`` and ``fails_at_once``).

Each step reads and writes the lake partition of its interval and returns a small dict
for XCom. Airflow-specific things (connections, the lake root, the run's context) are
passed in, so every step runs the same in a test, in ``dag.test()`` and on a worker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from activity_sync import lake
from activity_sync.bulk import BulkJobFailed, JobTimeout
from activity_sync.converge import (
    already_synced,
)
from activity_sync.errors import ActivitySyncError
from activity_sync.events import read_events
from activity_sync.extract import extract_interval
from activity_sync.load_step import step_load as step_load  # the hourly steps, all here
from activity_sync.load_step import step_preview as step_preview
from activity_sync.mirror import read_mirror, refresh_crm
from activity_sync.org import OrgCapabilities, api_budget, detect_capabilities
from activity_sync.org_slots import SlotWaitTimeout
from activity_sync.plan import add_rejections, write_plan
from activity_sync.plan import plan as make_plan
from activity_sync.plan_basis import choose_basis
from activity_sync.salesforce import SalesforceClient, SalesforceUnavailable
from activity_sync.schema import ALREADY_SYNCED
from activity_sync.shards import OrgStatus, Shard, describe_failure
from activity_sync.tenants import Org
from activity_sync.transport import is_transient

log = logging.getLogger(__name__)


# ActivitySyncErrors a later try can cure: Salesforce unreachable or over its limits past
# the client's own retries, a Bulk job that Salesforce ended, or one still running after
# the client's job timeout (the retry picks the load up again). A Bulk job can also fail
# for a cause that stays; retrying it costs a few calls, failing it for good loses the hour.
HEALING_ERRORS: tuple[type[ActivitySyncError], ...] = (
    SalesforceUnavailable,
    BulkJobFailed,
    JobTimeout,
    SlotWaitTimeout,  # an org's Salesforce slots held by other runs for long: they end
)


def fails_at_once(exc: BaseException) -> bool:
    """Whether a task that raised ``exc`` must fail now rather than be retried.

    Every ``ActivitySyncError`` is a mistake in configuration or input (an unknown key in
    orgs.yaml, bad settings, a run without a data interval, an org without the external-ID
    field…) that fails the same way on every try, except ``HEALING_ERRORS`` and those
    caused by a passing failure: a dropped or timed-out connection (a lake read on object
    storage) or what ``transport.is_transient`` calls transient (an upload refused with a
    5xx after every attempt). Anything else (a bug, a network error) keeps Airflow's
    retries. ``airflow_adapter.retry_policy`` applies this to every task.
    """
    if not isinstance(exc, ActivitySyncError) or isinstance(exc, HEALING_ERRORS):
        return False
    cause = exc.__cause__
    if cause is None:
        return True
    return not (isinstance(cause, ConnectionError | TimeoutError) or is_transient(cause))


class IntervalError(ActivitySyncError, ValueError):
    """The run has no usable data interval."""


# Params an earlier version read in place of the data interval. A backfill would have
# synced the same window in every run; the run's own data interval replaces them.
REMOVED_INTERVAL_PARAMS = ("interval_start", "interval_end")
HOUR = timedelta(hours=1)


def resolve_interval(
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    params: Mapping[str, Any],
) -> tuple[datetime, datetime]:
    """The hourly run's window: its data interval, which must be one whole UTC hour.

    A manual run triggered without a logical date has no data interval in Airflow 3 (the
    context keys are absent); guessing "the last hour" would silently sync the wrong hour.
    A window of another length or alignment would write events of other hours into the
    partition named after its start, beside those hours' own partitions.

    Args:
        data_interval_start, data_interval_end: the run's, from the Airflow context (the
            timetable's, inferred from a manual run's logical date, or set by hand in the
            trigger form or the REST call).
        params: the run's params; the removed ``interval_start``/``interval_end`` are
            refused rather than silently ignored.

    Returns:
        ``(start, end)`` in UTC: the lake's hour partitions are UTC hours, so an interval
        given as ``15:00+02:00`` must land in ``hour=13``.

    Raises:
        IntervalError: no interval at all, not one whole UTC hour, or a removed param.
    """
    removed = [name for name in REMOVED_INTERVAL_PARAMS if params.get(name)]
    if removed:
        raise IntervalError(
            f"params {removed} are no longer read: give the run its data interval instead "
            "(UI: Trigger → Data Interval → Specify Manually; REST: data_interval_start and "
            "data_interval_end beside the logical_date)"
        )
    if data_interval_start is None or data_interval_end is None:
        raise IntervalError(
            "this run has no data interval (a manual run without a logical date): trigger it "
            "with a logical date (the run syncs the hour before it), or set its data "
            "interval (UI: Trigger → Data Interval → Specify Manually)"
        )
    start, end = data_interval_start, data_interval_end
    if end <= start:
        raise IntervalError(
            f"data interval is empty: {start.isoformat()} .. {end.isoformat()}; the hourly DAG "
            "needs a timetable with data intervals (CronDataIntervalTimetable)"
        )
    utc = pd.Timestamp(start).tz_convert("UTC")
    if end - start != HOUR or utc != utc.floor("h"):
        raise IntervalError(
            f"data interval {start.isoformat()} .. {end.isoformat()} is not one whole UTC hour "
            "(such as 13:00 to 14:00 UTC): each run syncs one hour; for several hours, "
            "start a backfill (one run per hour)"
        )
    return start.astimezone(UTC), end.astimezone(UTC)


class UnknownOrgError(ActivitySyncError, ValueError):
    """The run's ``orgs`` param names an org that is not in the orgs config."""


def select_orgs(configured: Sequence[Org], wanted: Iterable[str] | None) -> list[Org]:
    """The orgs a run of either DAG covers.

    Args:
        configured: every org of the orgs config (``tenants.load_orgs()``), in its order.
        wanted: the run's ``orgs`` param; empty or None means all.

    Returns:
        The configured orgs named in ``wanted`` (all of them if it is empty), in config order.

    Raises:
        UnknownOrgError: ``wanted`` names an org the config does not have.
    """
    wanted = set(wanted or ())
    unknown = sorted(wanted - {o.org_id for o in configured})
    if unknown:
        raise UnknownOrgError(f"unknown org_id(s) in params.orgs: {unknown}")
    return [o for o in configured if not wanted or o.org_id in wanted]


# --------------------------------------------------------------------------- hourly sync


def landing_root(root: Any, org: Org) -> Any:
    """Where the org's raw events land: a URL of its own, or a folder under the lake root."""
    if "://" in org.landing:
        from activity_sync.airflow_adapter import object_path

        return object_path(org.landing)
    return root / org.landing


def step_extract(org: Org, root: Any, start: datetime, end: datetime) -> dict[str, Any]:
    """Gather the events that arrived in ``[start, end)`` into the hour's events partition.

    Returns:
        The interval (ISO strings) and the extract's counts (events, malformed lines…).
    """
    out = lake.partition(root, lake.EVENTS, org.org_id, start)
    stats = extract_interval(landing_root(root, org), org.org_id, start, end, out)
    return {"start": start.isoformat(), "end": end.isoformat(), **stats}


def step_refresh_crm(org: Org, client: SalesforceClient, root: Any) -> dict[str, Any]:
    """Bring the org's CRM snapshot in the lake up to date (incremental on SystemModstamp).

    Returns:
        Per object what was fetched, and the API calls this client made.
    """
    stats = refresh_crm(client, lake.crm_folder(root, org.org_id))
    return {"objects": stats, "api_calls": client.total_calls}


def step_detect(org: Org, client: SalesforceClient) -> dict[str, Any]:
    """Ask Salesforce whether Shared Activities is on and the external-ID field exists.

    Returns:
        ``OrgCapabilities`` as a dict (what ``step_plan`` takes back).

    Raises:
        OrgSetupError: the external-ID field is missing; the message says how to create it.
    """
    caps = detect_capabilities(client, org.external_id_field)
    return caps.to_dict()


def step_plan(
    org: Org,
    root: Any,
    start: datetime,
    caps: dict[str, Any],
    *,
    end: datetime | None = None,
    replan: bool = False,
) -> dict[str, Any]:
    """Plan the hour's events and write the plan partition.

    A re-run plans against what the hour's first run recorded (``plan_basis``): the CRM
    mirror's versions, the settings and the mode, so it reproduces the same Tasks and keys.
    An hour that never ran plans against the mirror as it stood at the hour's end and
    today's settings and mode; a re-plan against today's mirror, settings and mode. The
    basis used is written beside the plan; the load pins it once the hour is loaded.

    Args:
        org: the org, with its settings.
        root: the lake root.
        start: the hour's start (names the partition).
        caps: what ``step_detect`` returned; Shared Activities off forces individual mode
            (R12, recorded as ``fallback`` when the tenant wanted shared mode).
        end: the hour's end (default: an hour after ``start``).
        replan: plan against today's mirror, settings and mode whatever the hour's first
            run recorded.

    Returns:
        The plan summary without its nested counts (those stay in ``summary.json``).
    """
    capabilities = OrgCapabilities(**caps)
    basis, _ = choose_basis(
        root,
        org.org_id,
        start,
        end or start + HOUR,
        settings=org.settings,
        salesforce_shared_activities=capabilities.shared_activities,
        replan=replan,
    )
    settings = basis.org_settings()
    shared = basis.salesforce_shared_activities
    events_dir = lake.partition(root, lake.EVENTS, org.org_id, start)
    with lake.local_copy(events_dir) as local_events:
        events, _ = read_events(local_events / lake.EVENTS_FILE)
        malformed = pd.read_parquet(local_events / lake.MALFORMED_FILE)
    crm = read_mirror(lake.crm_folder(root, org.org_id), basis.crm_versions)
    synced = (
        pd.Series(False, index=events.index)
        if replan
        else already_synced(root, org.org_id, start, events["event_id"])
    )
    result = make_plan(events[~synced], crm, settings, salesforce_shared_activities=shared)
    result = add_rejections(result, pd.concat([malformed, _synced_rows(events[synced])]))
    result.summary.update(
        {
            "org_id": org.org_id,
            "interval_start": start.isoformat(),
            "salesforce_shared_activities": shared,
            "setting_shared_activities": settings.shared_activities,
            # R12: the tenant wants shared mode but Salesforce has it off.
            "fallback": settings.shared_activities and not shared,
            "basis": basis.source,
            "already_synced": int(synced.sum()),
            "crm_versions": basis.crm_versions,
        }
    )
    with lake.local_output(lake.partition(root, lake.PLAN, org.org_id, start)) as out:
        write_plan(result, out)
        (out / lake.PLAN_BASIS).write_text(json.dumps(asdict(basis), indent=2, sort_keys=True))
    log.info("plan %s %s: %s", org.org_id, start.isoformat(), json.dumps(result.summary))
    return {k: v for k, v in result.summary.items() if not isinstance(v, dict)}


def _synced_rows(events: pd.DataFrame) -> pd.DataFrame:
    """rejected.parquet rows for events another hour's load already wrote."""
    ids = events["event_id"].drop_duplicates()
    return pd.DataFrame(
        {
            "event_id": ids,
            "email": None,
            "reason": ALREADY_SYNCED,
            "detail": "loaded by an earlier hour's run; re-plan this hour to plan it again",
        }
    )


def step_budget(org: Org, client: SalesforceClient) -> dict[str, Any]:
    """Whether the org is over this product's share of its daily API requests.

    Returns:
        ``exhausted``, ``used``, ``limit`` and a sentence for the log.
    """
    budget = api_budget(client, org.api_budget_share)
    return {
        "exhausted": budget.exhausted,
        "used": budget.used,
        "limit": budget.limit,
        "message": budget.describe(),
    }


def step_publish(
    outcomes: Mapping[str, Mapping[str, Any] | None], window: Mapping[str, str]
) -> dict[str, Any] | None:
    """The ``extra`` of the run's one ``activity_sync_loaded`` Asset event.

    Args:
        outcomes: every org's outcome of this run by org_id (``shards.run_outcomes``),
            None for orgs that recorded none.
        window: the run's interval, ``start`` and ``end`` as ISO strings.

    Returns:
        The interval, the orgs that loaded and their planned Tasks; None if none loaded.
    """
    loaded = {
        org_id: o for org_id, o in outcomes.items() if o and o.get("status") == OrgStatus.LOADED
    }
    if not loaded:
        return None
    return {
        "start": window["start"],
        "end": window["end"],
        "orgs": sorted(loaded),
        "tasks_planned": sum(o["steps"]["plan"]["tasks"] for o in loaded.values()),
    }


def step_summary(
    shards: Sequence[Shard], outcomes: Mapping[str, Mapping[str, Any] | None]
) -> tuple[dict[str, Any], str | None]:
    """The run's closing word: how many orgs ended how, and which failed where.

    Args:
        shards: the run's shards, as ``select_orgs`` made them.
        outcomes: every org's outcome of this run (``shards.run_outcomes``).

    Returns:
        ``(summary, failure)``: counts by status and a line per failed org (for XCom and
        the log); ``failure`` is the run's failure message naming every failed org, its
        step and its task, or None when no org failed.
    """
    counts: dict[str, int] = {}
    failed: dict[str, str] = {}
    for shard in shards:
        for org_id in shard.org_ids:
            outcome = outcomes.get(org_id)
            status = outcome.get("status") if outcome else None
            if status in (OrgStatus.LOADED, OrgStatus.PLANNED, OrgStatus.WAITING):
                counts[status] = counts.get(status, 0) + 1
            else:
                failed[org_id] = describe_failure(outcome, shard)
    total = sum(len(s.orgs) for s in shards)
    summary = {"orgs": total, **counts, "failed": failed}
    if not failed:
        return summary, None
    lines = "; ".join(f"{org_id} ({why})" for org_id, why in failed.items())
    return summary, f"{len(failed)} of {total} org(s) failed: {lines}"
