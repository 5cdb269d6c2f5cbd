"""The steps of one org's hourly sync, as the DAG's tasks call them.

Each step reads and writes the lake partition of its interval and returns a small dict
for XCom. Airflow-specific things (connections, the lake root, the run's context) are
passed in, so every step runs the same in a test, in ``dag.test()`` and on a worker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from activity_sync import lake
from activity_sync.crm import read_crm
from activity_sync.events import read_events
from activity_sync.extract import extract_interval
from activity_sync.load import LoadOptions, load_plan, write_load_result
from activity_sync.mirror import refresh_crm
from activity_sync.org import OrgCapabilities, api_budget, detect_capabilities
from activity_sync.plan import add_rejections, read_plan, write_plan
from activity_sync.plan import plan as make_plan
from activity_sync.salesforce import SalesforceClient
from activity_sync.tenants import Org

log = logging.getLogger(__name__)


class IntervalError(ValueError):
    """The run has no usable data interval."""


def resolve_interval(
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    params: Mapping[str, Any],
) -> tuple[datetime, datetime]:
    """The run's window: explicit params win, else the timetable's data interval.

    A manual run triggered without a logical date has no data interval in Airflow 3 (the
    context keys are absent); guessing "the last hour" would silently sync the wrong hour.
    """
    if params.get("interval_start") or params.get("interval_end"):
        try:
            start = pd.Timestamp(params["interval_start"])
            end = pd.Timestamp(params["interval_end"])
        except (KeyError, ValueError, TypeError) as exc:
            raise IntervalError(
                "params interval_start and interval_end must both be ISO-8601 timestamps "
                f"with a time zone (got {params.get('interval_start')!r}, "
                f"{params.get('interval_end')!r})"
            ) from exc
        if start.tzinfo is None or end.tzinfo is None:
            raise IntervalError("params interval_start/interval_end need a time zone offset")
        start, end = start.to_pydatetime(), end.to_pydatetime()
    elif data_interval_start is not None and data_interval_end is not None:
        start, end = data_interval_start, data_interval_end
    else:
        raise IntervalError(
            "this run has no data interval (a manual run without a logical date): trigger it "
            "with a logical date, or set the params interval_start and interval_end"
        )
    if end <= start:
        raise IntervalError(
            f"data interval is empty: {start.isoformat()} .. {end.isoformat()}; the hourly DAG "
            "needs a timetable with data intervals (CronDataIntervalTimetable)"
        )
    return start, end


def landing_root(root: Any, org: Org) -> Any:
    if "://" in org.landing:
        from activity_sync.airflow_adapter import object_path

        return object_path(org.landing)
    return root / org.landing


def step_extract(org: Org, root: Any, start: datetime, end: datetime) -> dict[str, Any]:
    out = lake.partition(root, "events", org.org_id, start)
    stats = extract_interval(landing_root(root, org), org.org_id, start, end, out)
    return {"start": start.isoformat(), "end": end.isoformat(), **stats}


def step_refresh_crm(org: Org, client: SalesforceClient, root: Any) -> dict[str, Any]:
    stats = refresh_crm(client, lake.crm_folder(root, org.org_id))
    return {"objects": stats, "api_calls": client.total_calls}


def step_detect(org: Org, client: SalesforceClient) -> dict[str, Any]:
    caps = detect_capabilities(client, org.external_id_field)
    return caps.to_dict()


def step_plan(org: Org, root: Any, start: datetime, caps: dict[str, Any]) -> dict[str, Any]:
    capabilities = OrgCapabilities(**caps)
    events_dir = lake.partition(root, "events", org.org_id, start)
    with lake.local_copy(events_dir) as local_events:
        events, _ = read_events(local_events / "events.parquet")
        malformed = pd.read_parquet(local_events / "rejected.parquet")
    with lake.local_copy(lake.crm_folder(root, org.org_id)) as crm_dir:
        crm = read_crm(crm_dir)
    result = make_plan(
        events, crm, org.settings, salesforce_shared_activities=capabilities.shared_activities
    )
    result = add_rejections(result, malformed)
    result.summary.update(
        {
            "org_id": org.org_id,
            "interval_start": start.isoformat(),
            "salesforce_shared_activities": capabilities.shared_activities,
            "setting_shared_activities": org.settings.shared_activities,
            # R12: the tenant wants shared mode but Salesforce has it off.
            "fallback": org.settings.shared_activities and not capabilities.shared_activities,
        }
    )
    with lake.local_output(lake.partition(root, "plan", org.org_id, start)) as out:
        write_plan(result, out)
    log.info("plan %s %s: %s", org.org_id, start.isoformat(), json.dumps(result.summary))
    return {k: v for k, v in result.summary.items() if not isinstance(v, dict)}


def step_budget(org: Org, client: SalesforceClient) -> dict[str, Any]:
    budget = api_budget(client, org.api_budget_share)
    return {
        "exhausted": budget.exhausted,
        "used": budget.used,
        "limit": budget.limit,
        "message": budget.describe(),
    }


def step_load(
    org: Org,
    client: SalesforceClient,
    root: Any,
    start: datetime,
    options: LoadOptions | None = None,
) -> dict[str, Any]:
    options = options or LoadOptions(external_id_field=org.external_id_field)
    with lake.local_copy(lake.partition(root, "plan", org.org_id, start)) as plan_dir:
        planned = read_plan(plan_dir)
    result = load_plan(planned, client, options)
    result.summary.update(
        {
            "org_id": org.org_id,
            "interval_start": start.isoformat(),
            "mode": planned.summary.get("mode"),
        }
    )
    write_load_result(result, lake.partition(root, "loaded", org.org_id, start))
    return result.summary
