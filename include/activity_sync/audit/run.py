"""One audit run: read the day, count, reconcile, raise alerts, write the three outputs.

``run_audit`` writes ``counts.parquet``, ``audit.json`` and ``report.html`` (``report.py``)
into ``lake.audit_folder``. Everything is recomputed from the partitions on every run, so
an audit of any past day can be re-run and gives the same answer. ``audit_targets`` says
which (org, day) pairs a DAG run audits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from activity_sync import lake
from activity_sync.audit import held
from activity_sync.audit.alerts import (
    coverage_alert,
    day_over_day_alert,
    fallback_alerts,
    reconciliation_alert,
)
from activity_sync.audit.counts import (
    IN_PROGRESS,
    AuditOptions,
    headline,
    hour_counts,
    sender_counts,
    type_mix,
)
from activity_sync.audit.coverage import coverage, day_window, hour_labels, local_dates
from activity_sync.audit.drilldown import exclusions_fired, unmatched
from activity_sync.audit.inputs import DayInputs, neighbour_days, planned_keys, read_day, read_json
from activity_sync.errors import ActivitySyncError
from activity_sync.reconcile import SKIPPED, ReconcileOptions, reconcile
from activity_sync.report import render_report
from activity_sync.salesforce import SalesforceClient
from activity_sync.settings import Settings

log = logging.getLogger(__name__)

# 2: coverage, the org's time zone, drill-downs; reconciliation by key.
AUDIT_VERSION = 2


@dataclass
class AuditResult:
    """What one audit wrote, as objects."""

    document: dict[str, Any]  # what audit.json holds
    senders: pd.DataFrame  # what counts.parquet holds
    html: str

    @property
    def alerts(self) -> list[dict]:
        return self.document["alerts"]


def previous_day(day: str) -> str:
    """The ``YYYY-MM-DD`` before ``day``: whose audit the day-over-day alert compares with."""
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def read_audit(root: Any, org_id: str, day: str) -> dict[str, Any] | None:
    """The ``audit.json`` of one org's day, or None if that day was never audited."""
    path = lake.audit_folder(root, org_id, day) / lake.AUDIT_DOCUMENT
    return read_json(path) if path.exists() else None


def _json_ready(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Records with NaN as null and numpy scalars as Python ones."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def build_audit(
    inputs: DayInputs,
    hours: pd.DataFrame,
    reconciliation: Mapping[str, Any],
    yesterday: Mapping[str, Any] | None,
    options: AuditOptions,
    now: datetime,
    settings: Settings | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The audit document and the per-sender table, from inputs already read.

    ``settings`` give the time zone the report speaks in and explain the exclusions that
    fired; without them the day is shown in UTC and exclusions go unexplained.
    """
    timezone = settings.timezone if settings else "UTC"
    labels = hour_labels(inputs.day, timezone)
    covered = coverage(hours, inputs.day, timezone, now, options)
    senders = sender_counts(inputs)
    mix = type_mix(inputs)
    alerts = [
        alert
        for alert in (
            coverage_alert(inputs.org_id, inputs.day, covered),
            *fallback_alerts(inputs.org_id, inputs.day, hours, labels),
            reconciliation_alert(inputs.org_id, inputs.day, reconciliation),
            day_over_day_alert(
                inputs.org_id, inputs.day, mix, (yesterday or {}).get("by_type"), options
            ),
        )
        if alert is not None
    ]
    summary = headline(inputs, hours, senders, reconciliation)
    summary["hours_expected"] = len(covered["expected"])
    summary["hours_missing"] = covered["missing"]
    document = {
        "version": AUDIT_VERSION,
        "org_id": inputs.org_id,
        "date": inputs.day,
        "timezone": timezone,
        "day_window": day_window(inputs.day, timezone)["text"],
        "generated_at": now.isoformat(),
        "headline": summary,
        "coverage": covered,
        "hour_labels": labels,
        "hours": _json_ready(hours),
        "senders": _json_ready(senders),
        "by_type": mix,
        "unmatched": unmatched(inputs.rejected),
        "exclusions": exclusions_fired(inputs.rejected, settings),
        "reconciliation": dict(reconciliation),
        "alerts": alerts,
        "options": {
            "change_threshold_pct": options.change_threshold_pct,
            "min_tasks_for_change_alert": options.min_tasks_for_change_alert,
            "load_grace_seconds": int(options.load_grace.total_seconds()),
        },
        "compared_with": (yesterday or {}).get("date"),
    }
    return document, senders


def reconcile_day(
    client: SalesforceClient,
    root: Any,
    inputs: DayInputs,
    hours: pd.DataFrame,
    timezone: str = "UTC",
    options: ReconcileOptions | None = None,
) -> dict[str, Any]:
    """Reconcile the hours that should be in Salesforce by now, by key.

    Hours still in progress (planned recently, no load result yet) are left out, so an
    audit that runs while a later hour loads does not report that hour's Tasks missing.
    What they should hold is the plans corrected by the ledger (audit/held.py). Extra
    Tasks are looked for on the dates, in the org's time zone, that the UTC day overlaps.
    """
    settled = set(hours.loc[hours["load_state"].ne(IN_PROGRESS), "hour"])
    days = neighbour_days(inputs.day)
    tasks, salesforce_events, recorded = held.expected(root, inputs, settled, days)
    return reconcile(
        client,
        tasks.planned,
        tasks.relations,
        tasks.results,
        tasks.relation_results,
        lambda: planned_keys(root, inputs.org_id, days) | recorded,
        options,
        extra_dates=local_dates(inputs.day, timezone),
        salesforce_events=salesforce_events,
    )


def run_audit(
    root: Any,
    org_id: str,
    day: str,
    *,
    client: SalesforceClient | None = None,
    settings: Settings | None = None,
    options: AuditOptions | None = None,
    reconcile_options: ReconcileOptions | None = None,
    now: datetime | None = None,
) -> AuditResult:
    """Audit one org's day and write its three outputs (overwriting any earlier ones).

    Args:
        root: the lake root.
        org_id: the org, as in ``orgs.yaml``.
        day: ``YYYY-MM-DD``, the lake's partition date (a UTC day).
        client: the org's Salesforce; without one the reconciliation is reported as skipped.
        settings: the org's settings: its time zone (the report's hours and the dates on
            which extra Tasks are looked for) and exclusions (which ones fired). Default:
            UTC, exclusions unexplained.
        options: thresholds (defaults: ``AuditOptions()``).
        reconcile_options: the external-ID field and query sizes for the reconciliation.
        now: the audit's time (tests fix it; default: now, UTC).

    Returns:
        The document written to ``audit.json``, the table written to ``counts.parquet``
        and the HTML written to ``report.html``.
    """
    options = options or AuditOptions()
    now = now or datetime.now(UTC)
    timezone = settings.timezone if settings else "UTC"
    inputs = read_day(root, org_id, day)
    hours = hour_counts(inputs, now, options)
    reconciliation: Mapping[str, Any] = (
        reconcile_day(client, root, inputs, hours, timezone, reconcile_options)
        if client is not None
        else {"status": SKIPPED}
    )
    yesterday = read_audit(root, org_id, previous_day(day))
    document, senders = build_audit(
        inputs, hours, reconciliation, yesterday, options, now, settings
    )
    html = render_report(document)
    write_outputs(root, org_id, day, document, senders, html)
    log.info("audit %s %s: %s", org_id, day, json.dumps(document["headline"]))
    return AuditResult(document, senders, html)


def write_outputs(
    root: Any, org_id: str, day: str, document: dict, senders: pd.DataFrame, html: str
) -> None:
    """Write the three outputs of one org's day into its audit folder, replacing any."""
    out = lake.audit_folder(root, org_id, day)
    out.mkdir(parents=True, exist_ok=True)
    with (out / lake.AUDIT_COUNTS).open("wb") as fh:
        senders.to_parquet(fh, index=False)
    with (out / lake.AUDIT_DOCUMENT).open("w") as fh:
        fh.write(json.dumps(document, indent=2, sort_keys=False, default=str))
    with (out / lake.AUDIT_REPORT).open("w") as fh:
        fh.write(html)


class AuditTargetError(ActivitySyncError, ValueError):
    """The run's params name a day or org that cannot be audited."""


def audit_targets(
    *,
    orgs: Iterable[str],
    day: str | None = None,
    asset_extras: Iterable[Mapping[str, Any]] = (),
    logical_date: datetime | None = None,
    run_after: datetime | None = None,
) -> list[dict[str, str]]:
    """Which (org, day) pairs a run audits, first rule that applies:

    1. the ``day`` param (a manual run for any past day);
    2. the triggering asset events (a load just finished): each event's ``start`` gives the
       partition day and its ``orgs`` the orgs that loaded;
    3. the day before the logical date (the 00:30 UTC run, a backfill) or, for a manual
       run without one, the day before it was triggered.

    Args:
        orgs: the org_ids this run covers (``steps.select_orgs``: the ``orgs`` param, or all).
        day: the ``day`` param, ``YYYY-MM-DD``, if set.
        asset_extras: the ``extra`` of each triggering ``activity_sync_loaded`` event.
        logical_date, run_after: the run's, from the Airflow context.

    Returns:
        ``[{"org_id": ..., "day": "YYYY-MM-DD"}]`` sorted by org, then day.

    Raises:
        AuditTargetError: a malformed ``day``, or a run with no day at all.
    """
    pool = sorted(set(orgs))
    if day:
        try:
            date.fromisoformat(day)
        except ValueError as exc:
            raise AuditTargetError(f"params.day must be YYYY-MM-DD, got {day!r}") from exc
        return [{"org_id": o, "day": day} for o in pool]
    extras = [e for e in asset_extras if e and e.get("start")]
    if extras:
        pairs = {
            (o, datetime.fromisoformat(e["start"]).strftime("%Y-%m-%d"))
            for e in extras
            for o in (e.get("orgs") or pool)
            if o in pool
        }
        return [{"org_id": o, "day": d} for o, d in sorted(pairs)]
    moment = logical_date or run_after
    if moment is None:
        raise AuditTargetError("the run has no day: set params.day (YYYY-MM-DD)")
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    previous = (stamp - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    return [{"org_id": o, "day": previous} for o in pool]
