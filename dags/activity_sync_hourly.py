"""
### Hourly activity sync

Takes each org's email activity for the hour, plans it into Salesforce Tasks with Shared
Activities (rules R1–R14, `docs/rules.md`), and loads it so that Salesforce holds every
planned Task and TaskRelation exactly once, whatever retries, re-runs and backfills happen.

**window** → **select_orgs** (the orgs of `include/config/orgs.yaml`, whose settings
`docs/settings.md` describes, in shards: small orgs `shard_size` to a task, an org marked
`dedicated` alone) → **sync**, one task per shard, labelled with its orgs. For each org of
its shard, `sync` runs: extract the events that arrived in the data interval (format:
`docs/events.md`) → refresh the CRM mirror (incremental on SystemModstamp) → detect whether
Shared Activities is on and the external-ID field exists → plan → check the API budget
(an org over this product's share of its daily API requests waits: the task is rescheduled
every 15 minutes, without failing) → load (Bulk API 2.0 upsert on the external key, then
only the missing TaskRelations). Each org's Salesforce steps hold one of that org's own
`salesforce_concurrency` slots. One org failing does not stop the others: it is recorded,
the shard goes on, and the task fails naming it (a retry redoes only unfinished orgs).
→ **publish** the `activity_sync_loaded` Asset for the orgs that loaded (it schedules the
audit DAG; a run in which none loaded, such as a dry run, publishes nothing) → **summary**:
each org's outcome; red when any org failed, naming every failed org, its step and its
task, or, when the run did not get as far as its orgs, naming `window` or `select_orgs`
and its error. What each step writes in the lake: `docs/outputs.md`.

**Manual runs** sync one whole UTC hour: trigger with a logical date (the run syncs the
hour before it), or set the data interval by hand (Trigger → Data Interval → Specify
Manually; REST: `data_interval_start`/`data_interval_end`). `orgs` limits the run to some
orgs; `dry_run` plans without loading (and writes what a load would create, update and
delete). Backfills (UI: Trigger → Backfill, or `airflow backfill create`) just work: each
run syncs its own hour, each step overwrites that hour's partition, loads are upserts, and
a re-run plans against the CRM and settings the hour first ran with. `replan` plans against
today's instead and then deletes (Recycle Bin) the Tasks and relations earlier loads made
that the new plan lacks: never Tasks someone else edited, never more than
`max_delete_share` (0.2) of an hour's without confirmation (`docs/operations.md`).

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
    AssetAlias,
    CronDataIntervalTimetable,
    Param,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException

from activity_sync.airflow_adapter import (
    EXECUTION_TIMEOUTS,
    LOADED_ALIAS,
    LOADED_ASSET,
    recording_failure,
    retry_policy,
)

LOADED = Asset(name=LOADED_ASSET)
LOADS = AssetAlias(name=LOADED_ALIAS)


@dag(
    dag_id="activity_sync_hourly",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    # Far back on purpose: Airflow creates no task instances for a manual run whose logical
    # date is before start_date (the run ends "success" having done nothing), so an older
    # start_date would silently skip a manually triggered old hour. catchup=False keeps the
    # scheduler from creating the runs in between.
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
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
        "replan": Param(
            False,
            type=["null", "boolean"],
            title="Re-plan",
            description="Plan the hour against today's CRM and settings instead of those "
            "it first ran with, then make Salesforce hold exactly the new plan: Tasks and "
            "relations earlier loads made that the new plan lacks are deleted (Recycle Bin).",
        ),
        "max_delete_share": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            title="Re-plan: most of an hour's Tasks to delete",
            description="A re-plan that would delete a larger share of the Tasks earlier "
            "loads made for an hour's events changes nothing and fails. Empty: 0.2.",
        ),
    },
)
def activity_sync_hourly():
    @task(execution_timeout=EXECUTION_TIMEOUTS["window"])
    def window(data_interval_start=None, data_interval_end=None, params=None) -> dict:
        """The run's interval: its data interval, one whole UTC hour."""
        from activity_sync.steps import resolve_interval

        with recording_failure(get_current_context()):
            start, end = resolve_interval(data_interval_start, data_interval_end, params or {})
        return {"start": start.isoformat(), "end": end.isoformat()}

    @task(execution_timeout=EXECUTION_TIMEOUTS["select_orgs"])
    def select_orgs(params=None) -> list[dict]:
        """Orgs from the versioned config, filtered by the `orgs` param, in shards."""
        from activity_sync import steps
        from activity_sync.airflow_adapter import failing_without_retry
        from activity_sync.shards import make_shards
        from activity_sync.tenants import load_orgs_file

        with (
            failing_without_retry(steps.UnknownOrgError),
            recording_failure(get_current_context()),
        ):
            config = load_orgs_file()
            orgs = steps.select_orgs(config.orgs, (params or {}).get("orgs"))
            return [s.to_dict() for s in make_shards(orgs, config.shard_size)]

    @task(map_index_template="{{ shard_label }}", execution_timeout=EXECUTION_TIMEOUTS["sync"])
    def sync(shard: dict, win: dict) -> dict:
        """Every org of the shard, each on its own; see the DAG docs."""
        from activity_sync.airflow_adapter import sync_shard_task

        context = get_current_context()
        context["shard_label"] = shard["label"]  # the task instance's name in the UI
        return sync_shard_task(shard, win, context)

    @task(outlets=[LOADS], trigger_rule="all_done", execution_timeout=EXECUTION_TIMEOUTS["publish"])
    def publish(outlet_events=None) -> dict | None:
        """One Asset event per run (not per org), carrying what loaded; none if none did."""
        import logging

        from activity_sync.airflow_adapter import run_outcomes_from_context
        from activity_sync.steps import step_publish

        win, _, outcomes = run_outcomes_from_context(get_current_context())
        extra = step_publish(outcomes, win) if outcomes else None
        if extra is None:
            logging.getLogger("airflow.task").info("no org loaded in this run: nothing to audit")
            return None
        outlet_events[LOADS].add(LOADED, extra=extra)
        return extra

    @task(trigger_rule="all_done", retries=0, execution_timeout=EXECUTION_TIMEOUTS["summary"])
    def summary() -> dict:
        """Each org's outcome; fails naming every org that failed, its step and its task."""
        import logging

        from activity_sync.airflow_adapter import failed_before_orgs, run_outcomes_from_context
        from activity_sync.steps import step_summary
        from activity_sync.task_failures import failed_tasks_message

        context = get_current_context()
        win, shards, outcomes = run_outcomes_from_context(context)
        if outcomes is None:
            raise AirflowFailException(
                "the run did not get as far as its orgs: "
                + failed_tasks_message(failed_before_orgs(context))
            )
        result, failure = step_summary(shards, outcomes)
        logging.getLogger("airflow.task").info("run summary: %s", result)
        if failure:
            raise AirflowFailException(failure)
        return result

    synced = sync.partial(win=window()).expand(shard=select_orgs())
    synced >> publish() >> summary()


activity_sync_hourly()
