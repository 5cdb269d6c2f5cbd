"""The daily audit (R13): what Shared Activities saved, for whom, and what went wrong.

Reads one org's day from the lake (every hour's plan, events and load results), counts
per sender and per hour, reconciles with Salesforce (``reconcile.py``), raises alerts, and
writes ``counts.parquet``, ``audit.json`` and ``report.html`` (``report.py``) into
``lake.audit_folder``. By layer:

- ``inputs``: reading the day's partitions (through ``lake``);
- ``counts``: pure counting, and what each figure means;
- ``coverage``: which hours were synced, and the day's hours in the org's time zone;
- ``drilldown``: the top unmatched addresses and domains, the exclusions that fired;
- ``alerts``: the four alerts, sending them to the user's callback, remembering which
  were sent;
- ``run``: one audit end to end, its outputs, and which (org, day) pairs a run audits.

The DAG's tasks call ``activity_sync.steps``; everything public is importable from here.
"""

from activity_sync.audit.alerts import (
    ALERT_CALLBACK_ENV,
    AlertCallbackError,
    coverage_alert,
    day_over_day_alert,
    fallback_alerts,
    load_callback,
    mark_notified,
    notified_ids,
    notify,
    reconciliation_alert,
    send_alerts,
    unnotified,
)
from activity_sync.audit.counts import (
    HOUR_COLUMNS,
    SENDER_COLUMNS,
    UNKNOWN_SENDER,
    AuditOptions,
    headline,
    hour_counts,
    percent_change,
    sender_counts,
    type_mix,
)
from activity_sync.audit.coverage import coverage, describe_hours, hour_labels, local_dates
from activity_sync.audit.drilldown import exclusions_fired, unmatched
from activity_sync.audit.inputs import (
    DayInputs,
    has_plan,
    neighbour_days,
    planned_by,
    planned_keys,
    read_day,
)
from activity_sync.audit.run import (
    AuditResult,
    AuditTargetError,
    audit_targets,
    build_audit,
    read_audit,
    reconcile_day,
    run_audit,
    write_outputs,
)

__all__ = [
    "ALERT_CALLBACK_ENV",
    "HOUR_COLUMNS",
    "SENDER_COLUMNS",
    "UNKNOWN_SENDER",
    "AlertCallbackError",
    "AuditOptions",
    "AuditResult",
    "AuditTargetError",
    "DayInputs",
    "audit_targets",
    "build_audit",
    "coverage",
    "coverage_alert",
    "describe_hours",
    "exclusions_fired",
    "has_plan",
    "planned_by",
    "hour_labels",
    "local_dates",
    "unmatched",
    "day_over_day_alert",
    "fallback_alerts",
    "headline",
    "hour_counts",
    "load_callback",
    "mark_notified",
    "neighbour_days",
    "notified_ids",
    "notify",
    "percent_change",
    "planned_keys",
    "read_audit",
    "read_day",
    "reconcile_day",
    "reconciliation_alert",
    "run_audit",
    "send_alerts",
    "sender_counts",
    "type_mix",
    "unnotified",
    "write_outputs",
]
