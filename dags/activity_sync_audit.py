"""
### Daily activity audit (R13)

What Shared Activities saved and whether Salesforce holds what was planned, per org and
day (a UTC day: the lake's partitions; the report shows its hours in the org's time zone):
coverage (hours synced of the hours expected, the missing ones named), events by type,
Tasks made, the Tasks one per person would have made, TaskRelations, rejected recipients
by reason with the top unmatched addresses and the exclusions that fired, dead-lettered
rows, the mode in force each hour, and a reconciliation with Salesforce by key (missing,
extra and duplicated Tasks and TaskRelations). Writes `counts.parquet`, `audit.json` and
`report.html` under `<lake>/audit/org_id=…/date=…/` (`docs/outputs.md` explains every
figure); the **Activity audit** page (Browse menu) lists the reports.

**When it runs.** After every hourly load (the `activity_sync_loaded` Asset: the days and
orgs come from the asset events), and daily at 02:30 UTC for the previous day (once its
last hour is settled), which is also what a backfill runs. For any past day, trigger it with the `day` param
(YYYY-MM-DD) and optionally `orgs`. A day before an org's first planned hour is not
audited (nothing was synced yet): the `targets` task says so in its log. A later day with
no planned hour (the hourly runs missed it) is, and raises the coverage alert.

**Alerts.** A past day with hours not synced (coverage), a reconciliation difference, an
hour that fell back to individual mode, and a day-over-day change in Tasks beyond
`change_threshold_pct` that the event mix does not explain. Each is logged as a warning by
the `raise_alerts` task and passed to the callable named in the environment variable
`ACTIVITY_SYNC_ALERT_CALLBACK` (`package.module:function`, called as
`function(alerts, context)`), once per alert (the audit re-runs after every load; an alert
already sent is not sent again). With `fail_on_alert`, `raise_alerts` fails when it sent
alerts, so Airflow's own failure notifications (on_failure_callback, email on failure) fire
too. A mistake in configuration (an unknown org, a malformed day) fails at once, naming it.

**A red run.** `raise_alerts` runs whatever happened before it and fails when `targets` or
an org's `audit` failed, naming the task (and the org and day) and its error; a healthy run
has no failed or skipped task.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException

from activity_sync.airflow_adapter import (
    EXECUTION_TIMEOUTS,
    LOADED_ASSET,
    SALESFORCE_POOL,
    recording_failure,
    retry_policy,
)

LOADED = Asset(name=LOADED_ASSET)


@dag(
    dag_id="activity_sync_audit",
    schedule=AssetOrTimeSchedule(
        # 02:30: the day's last hour (loaded from 00:00) is past the audit's 2-hour load
        # grace, so a day audited now is settled: what is missing now stays missing.
        timetable=CronTriggerTimetable("30 2 * * *", timezone="UTC"),
        assets=[LOADED],
    ),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    # Audits of a day overwrite the same files; one run at a time keeps them whole.
    max_active_runs=1,
    doc_md=__doc__,
    tags=["activity-sync", "salesforce", "audit"],
    default_args={
        "owner": "revops-data",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "retry_policy": retry_policy(),
    },
    # Nothing here is required: the form's empty values mean the defaults.
    params={
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Day",
            description="Audit this UTC day (YYYY-MM-DD). Empty: the days the trigger "
            "names (the hours a load just finished), or the day before the logical date.",
        ),
        "orgs": Param(
            [],
            type=["null", "array"],
            items={"type": "string"},
            title="Orgs",
            description="Audit only these org_ids (one per line, as in orgs.yaml). "
            "Empty: every org.",
        ),
        "reconcile": Param(
            True,
            type=["null", "boolean"],
            title="Reconcile with Salesforce",
            description="Query Salesforce back for the day's planned Tasks and TaskRelations "
            "(by key) and list what is missing, extra or duplicated. Off: count from the "
            "lake only, with no API calls.",
        ),
        # audit.counts.DEFAULT_CHANGE_THRESHOLD_PCT, written out: importing the audit (pandas)
        # would slow every parse of this file; tests/dags/test_audit_dag.py keeps the two equal.
        "change_threshold_pct": Param(
            30.0,
            type=["null", "number"],
            minimum=0,
            title="Day-over-day alert threshold (%)",
            description="Alert when the day's Tasks moved more than this many percent from "
            "the day before and the day's events do not explain it.",
        ),
        "fail_on_alert": Param(
            False,
            type=["null", "boolean"],
            title="Fail on alert",
            description="Fail the raise_alerts task when it sent alerts, so Airflow's own "
            "failure notifications (email, on_failure_callback) fire too.",
        ),
    },
)
def activity_sync_audit():
    @task(execution_timeout=EXECUTION_TIMEOUTS["targets"])
    def targets(params=None, triggering_asset_events=None, logical_date=None) -> list[dict]:
        """The (org, day) pairs this run audits; days before an org's first plan are left out,
        and logged."""
        from activity_sync import audit_steps, steps
        from activity_sync.airflow_adapter import lake_root
        from activity_sync.tenants import load_orgs

        params = params or {}
        context = get_current_context()
        with recording_failure(context):
            orgs = steps.select_orgs(load_orgs(), params.get("orgs"))
            extras = [
                e.extra for events in (triggering_asset_events or {}).values() for e in events
            ]
            return audit_steps.step_targets(
                orgs, params, extras, logical_date, context["dag_run"].run_after, lake_root()
            )

    @task(
        pool=SALESFORCE_POOL,
        execution_timeout=EXECUTION_TIMEOUTS["audit"],
        map_index_template="{{ task.op_kwargs['target']['org_id'] }} {{ task.op_kwargs['target']['day'] }}",
    )
    def audit(target: dict, params=None) -> dict:
        """Count, reconcile, write the outputs of one org's day."""
        from activity_sync.airflow_adapter import lake_root, salesforce_client
        from activity_sync.audit_steps import step_audit
        from activity_sync.tenants import load_orgs

        label = f"audit [{target['org_id']} {target['day']}]"
        with recording_failure(get_current_context(), label):
            return step_audit(
                {o.org_id: o for o in load_orgs()},
                target,
                lake_root(),
                params or {},
                salesforce_client,
            )

    @task(trigger_rule="all_done", retries=0, execution_timeout=EXECUTION_TIMEOUTS["raise_alerts"])
    def raise_alerts(results, params=None) -> int:
        """Send the alerts not sent before; fail naming every task that failed (or, with
        `fail_on_alert`, when alerts were sent), so the run is red."""
        from activity_sync.airflow_adapter import audit_run_failures, lake_root
        from activity_sync.audit_steps import step_raise_alerts
        from activity_sync.task_failures import failed_tasks_message

        context = get_current_context()
        done = [r for r in (results or []) if r]
        sent = step_raise_alerts(done, lake_root(), context)
        problems = []
        failures = audit_run_failures(context, len(done))
        if failures:
            problems.append(failed_tasks_message(failures))
        if sent and (params or {}).get("fail_on_alert"):
            problems.append(f"{sent} audit alert(s); see the log of this task")
        if problems:
            raise AirflowFailException("; ".join(problems))
        return sent

    raise_alerts(audit.expand(target=targets()))


activity_sync_audit()
