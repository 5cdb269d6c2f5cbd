"""
### Hourly activity sync

Takes each org's email activity for the hour, plans it into Salesforce Tasks with Shared
Activities (rules R1–R12, `docs/rules.md`), and loads it so that Salesforce holds every
planned Task and TaskRelation exactly once, whatever retries, re-runs and backfills happen.

Per org (a mapped task group over `include/config/orgs.yaml`, whose settings
`docs/settings.md` describes; one org failing does not stop the others): **extract** the
events that arrived in the data interval (format: `docs/events.md`) → **refresh_crm**
(incremental mirror on SystemModstamp) → **detect** whether Shared Activities is on and the
external-ID field exists → **plan** → **wait_for_budget** (pauses, without failing, while
the org is over this product's share of its daily API requests) → **load** (Bulk API 2.0
upsert on the external key, then only the missing TaskRelations). A successful load publishes
the `activity_sync_loaded` Asset, which schedules the audit DAG. What each step writes in
the lake: `docs/outputs.md`.

**Manual runs** sync one whole UTC hour: trigger with a logical date (the run syncs the
hour before it), or set the data interval by hand (Trigger → Data Interval → Specify
Manually; REST: `data_interval_start`/`data_interval_end`). `orgs` limits the run to some
orgs; `dry_run` plans without loading. Backfills (UI: Trigger → Backfill, or `airflow
backfill create`) just work: each run syncs its own hour, each step overwrites that hour's
partition and loads are upserts.

**Failures.** A mistake in configuration or input (an unknown key in `orgs.yaml`, bad
settings, a run without a data interval, an org without the external-ID field) fails its
task at once, naming the cause: fix it, then clear the task. Only passing failures (Salesforce
unreachable or over its limits, a dropped connection) are retried, with backoff.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import (
    Asset,
    CronDataIntervalTimetable,
    Param,
    PokeReturnValue,
    dag,
    get_current_context,
    task,
    task_group,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from activity_sync.airflow_adapter import (
    EXECUTION_TIMEOUTS,
    LOADED_ASSET,
    SALESFORCE_POOL,
    retry_policy,
)

LOADED = Asset(name=LOADED_ASSET)


def _org(org: dict):
    from activity_sync.tenants import Org

    return Org.from_dict(org)


def _client(org: dict):
    from activity_sync.airflow_adapter import salesforce_client

    return salesforce_client(org["salesforce_conn_id"])


def _root():
    from activity_sync.airflow_adapter import lake_root

    return lake_root()


def _when(win: dict, key: str = "start"):
    from datetime import datetime

    return datetime.fromisoformat(win[key])


@dag(
    dag_id="activity_sync_hourly",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    doc_md=__doc__,
    tags=["activity-sync", "salesforce"],
    default_args={
        "owner": "revops-data",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "retry_policy": retry_policy(),
    },
    # Nothing here is required: the form's empty values mean the defaults.
    params={
        "orgs": Param(
            [],
            type=["null", "array"],
            items={"type": "string"},
            title="Orgs",
            description="Sync only these org_ids (one per line, as in orgs.yaml). "
            "Empty: every org.",
        ),
        "dry_run": Param(
            False,
            type=["null", "boolean"],
            title="Dry run",
            description="Extract and plan the hour and write the plan to the lake, "
            "but load nothing into Salesforce.",
        ),
    },
)
def activity_sync_hourly():
    @task(execution_timeout=EXECUTION_TIMEOUTS["window"])
    def window(data_interval_start=None, data_interval_end=None, params=None) -> dict:
        """The run's interval: its data interval, one whole UTC hour."""
        from activity_sync.steps import resolve_interval

        start, end = resolve_interval(data_interval_start, data_interval_end, params or {})
        return {"start": start.isoformat(), "end": end.isoformat()}

    @task(execution_timeout=EXECUTION_TIMEOUTS["select_orgs"])
    def select_orgs(params=None) -> list[dict]:
        """Orgs from the versioned config, filtered by the `orgs` param."""
        from activity_sync import steps
        from activity_sync.airflow_adapter import failing_without_retry
        from activity_sync.tenants import load_orgs

        with failing_without_retry(steps.UnknownOrgError):
            orgs = steps.select_orgs(load_orgs(), (params or {}).get("orgs"))
        return [o.to_dict() for o in orgs]

    @task_group(group_id="org")
    def sync_org(org: dict, win: dict):
        @task(execution_timeout=EXECUTION_TIMEOUTS["extract"])
        def extract(org: dict, win: dict) -> dict:
            from activity_sync.steps import step_extract

            return step_extract(_org(org), _root(), _when(win), _when(win, "end"))

        @task(pool=SALESFORCE_POOL, execution_timeout=EXECUTION_TIMEOUTS["refresh_crm"])
        def refresh_crm(org: dict) -> dict:
            from activity_sync.steps import step_refresh_crm

            return step_refresh_crm(_org(org), _client(org), _root())

        @task(pool=SALESFORCE_POOL, execution_timeout=EXECUTION_TIMEOUTS["detect"])
        def detect(org: dict) -> dict:
            from activity_sync.steps import step_detect

            return step_detect(_org(org), _client(org))

        @task(execution_timeout=EXECUTION_TIMEOUTS["plan"])
        def plan(org: dict, win: dict, caps: dict, extracted: dict, crm: dict) -> dict:
            from activity_sync.steps import step_plan

            return step_plan(_org(org), _root(), _when(win), caps)

        @task.sensor(
            pool=SALESFORCE_POOL,
            mode="reschedule",
            poke_interval=15 * 60,
            timeout=24 * 3600,
            retries=0,
            execution_timeout=EXECUTION_TIMEOUTS["wait_for_budget"],
        )
        def wait_for_budget(org: dict, planned: dict) -> PokeReturnValue:
            """Pause (freeing the worker slot) while the org is over its API budget."""
            import logging

            from activity_sync.steps import step_budget

            if get_current_context()["params"].get("dry_run"):
                raise AirflowSkipException("dry run: nothing will be loaded")
            budget = step_budget(_org(org), _client(org))
            if budget["exhausted"]:
                logging.getLogger("airflow.task").warning(
                    "API budget exhausted for %s, waiting: %s", org["org_id"], budget["message"]
                )
            return PokeReturnValue(is_done=not budget["exhausted"], xcom_value=budget)

        @task(pool=SALESFORCE_POOL, execution_timeout=EXECUTION_TIMEOUTS["load"])
        def load(org: dict, win: dict, budget: dict) -> dict:
            from activity_sync.steps import step_load

            return step_load(_org(org), _client(org), _root(), _when(win))

        extracted = extract(org, win)
        crm = refresh_crm(org)
        caps = detect(org)
        planned = plan(org, win, caps, extracted, crm)
        return load(org, win, wait_for_budget(org, planned))

    @task(
        outlets=[LOADED], trigger_rule="all_done", execution_timeout=EXECUTION_TIMEOUTS["publish"]
    )
    def publish(loaded, win: dict, outlet_events=None) -> dict:
        """One Asset event per run (not per org), carrying what loaded."""
        from activity_sync.steps import step_publish

        extra = step_publish(loaded, win)
        if extra is None:
            raise AirflowSkipException("no org loaded in this run")
        outlet_events[LOADED].extra = extra
        return extra

    @task(
        trigger_rule="one_failed",
        retries=0,
        execution_timeout=EXECUTION_TIMEOUTS["fail_if_any_org_failed"],
    )
    def fail_if_any_org_failed() -> None:
        """Keeps the run red when an org failed, though publish succeeded for the rest."""
        raise AirflowFailException("at least one org failed; see the org.* task logs")

    win = window()
    loaded = sync_org.partial(win=win).expand(org=select_orgs())
    published = publish(loaded, win)
    [loaded, published] >> fail_if_any_org_failed()


activity_sync_hourly()
