"""Alerts: what the audit raises, how it is sent, and which were sent already.

Four kinds, each with a stable ``id`` (org/day/kind/key) so that re-running the audit
(it runs after every hourly load) raises the same alert again rather than a new one:

- *coverage*: a day that is over with hours that were never synced (``coverage.py``);
- *fallback*: an hour planned in individual mode against the tenant's setting (R12);
- *reconciliation*: Salesforce does not hold what was planned;
- *day_over_day*: total Tasks moved by more than the threshold **and** today's events,
  priced at yesterday's Tasks per event of each type, do not explain today's Tasks within
  the same threshold. A partial day therefore does not alert merely for being partial.
  A meeting made into a Salesforce Event (R14) counts as the Tasks individual mode would
  have made for it, so that turning ``meetings_as_events`` on is no change by itself.

Sending logs each alert and calls the user's callback once; the ids sent are kept in the
audit folder's ``notified.json`` so the next run does not send them again.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from activity_sync import lake
from activity_sync.audit.counts import AuditOptions, percent_change
from activity_sync.audit.inputs import read_json
from activity_sync.errors import ActivitySyncError
from activity_sync.reconcile import DIFFERENCES, describe_counts

log = logging.getLogger(__name__)

ALERT_CALLBACK_ENV = "ACTIVITY_SYNC_ALERT_CALLBACK"
FALLBACK, RECONCILIATION, DAY_OVER_DAY = "fallback", "reconciliation", "day_over_day"
COVERAGE = "coverage"


class AlertCallbackError(ActivitySyncError, ValueError):
    """``ACTIVITY_SYNC_ALERT_CALLBACK`` does not name a callable."""


def _alert(kind: str, org_id: str, day: str, key: str, message: str, **details: Any) -> dict:
    return {
        "id": f"{org_id}/{day}/{kind}/{key}",
        "kind": kind,
        "severity": "warning",
        "org_id": org_id,
        "date": day,
        "message": message,
        "details": details,
    }


def coverage_alert(org_id: str, day: str, coverage: Mapping[str, Any]) -> dict | None:
    """An alert when the day is over and some of its hours were not synced; else None.

    Args:
        coverage: ``coverage.coverage`` of the day.

    Returns:
        The alert, naming the missing hours (local time, UTC in brackets) and how to fill
        them; its id names the hours, so a backfill that fills some raises a new one.
    """
    missing = list(coverage["missing"])
    if not coverage["day_over"] or not missing:
        return None
    return _alert(
        COVERAGE,
        org_id,
        day,
        "hours=" + ",".join(f"{h:02d}" for h in missing),
        f"{org_id} {day}: {len(coverage['synced'])} of {len(coverage['expected'])} hours "
        f"synced; not synced: {coverage['missing_text']}. Emails of those hours are not in "
        "Salesforce: backfill them (Trigger → Backfill on activity_sync_hourly).",
        missing_hours=missing,
        synced_hours=len(coverage["synced"]),
        expected_hours=len(coverage["expected"]),
    )


def fallback_alerts(org_id: str, day: str, hours: pd.DataFrame, labels: list[dict]) -> list[dict]:
    """One alert per fallback hour (R12) of ``hours`` (``hour_counts``).

    Args:
        labels: ``coverage.hour_labels`` of the day, which name each hour for the reader.
    """
    return [
        _alert(
            FALLBACK,
            org_id,
            day,
            f"hour={h:02d}",
            f"{org_id} {day} {labels[h]['label']} fell back to individual mode ({reason}). "
            "Tasks were made one per person; turn Shared Activities back on in Salesforce or "
            "switch the tenant setting off deliberately (R12).",
            hour=int(h),
            mode_reason=reason,
        )
        for h, reason in hours.loc[hours["fallback"], ["hour", "mode_reason"]].itertuples(
            index=False
        )
    ]


def reconciliation_alert(org_id: str, day: str, reconciliation: Mapping) -> dict | None:
    """An alert when the reconciliation found differences, with their counts; else None."""
    if reconciliation.get("status") != DIFFERENCES:
        return None
    counts = reconciliation["counts"]
    digest = ",".join(f"{label}={n}" for label, n in counts.items())
    return _alert(
        RECONCILIATION,
        org_id,
        day,
        digest,
        f"{org_id} {day}: Salesforce does not hold what was planned: "
        f"{describe_counts(counts)}. The report lists each record by key.",
        counts=dict(counts),
    )


def day_over_day_alert(
    org_id: str,
    day: str,
    today: Mapping[str, Mapping[str, int]],
    yesterday: Mapping[str, Mapping[str, int]] | None,
    options: AuditOptions,
) -> dict | None:
    """Alert when Tasks moved beyond the threshold and the event mix does not explain it.

    Args:
        today, yesterday: ``type_mix`` of the two days (yesterday's from its ``audit.json``;
            None when there is none, and then nothing is compared).
        options: the threshold and the smallest day that may alert.

    Returns:
        The alert, whose details give the expected Tasks and yesterday's Tasks per event;
        None when the change is within the threshold or explained by the event mix.
    """
    if not yesterday:
        return None
    types = sorted(set(today) | set(yesterday))

    def figure(mix: Mapping[str, Mapping[str, int]], name: str) -> np.ndarray:
        return np.array([mix.get(t, {}).get(name, 0) for t in types], dtype=float)

    # A meeting made into a Salesforce Event (R14) counts as the Tasks it stands for, which
    # is what it made before: turning meetings_as_events on is no change by itself.
    events_today, events_before = figure(today, "events"), figure(yesterday, "events")
    instead = "individual_mode_salesforce_events"
    tasks_today = figure(today, "tasks") + figure(today, instead)
    tasks_before = figure(yesterday, "tasks") + figure(yesterday, instead)
    total_before, total_today = tasks_before.sum(), tasks_today.sum()
    if total_before <= 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(events_before > 0, tasks_before / events_before, np.nan)
    # A type absent yesterday has no baseline: its Tasks count as explained.
    expected_by_type = np.where(np.isnan(ratio), tasks_today, events_today * ratio)
    expected = float(expected_by_type.sum())
    total_change = float(percent_change(total_today, total_before))
    if max(expected, total_today) < options.min_tasks_for_change_alert:
        return None
    unexplained = float(percent_change(total_today, expected)) if expected > 0 else np.inf
    threshold = options.change_threshold_pct
    if abs(total_change) <= threshold or abs(unexplained) <= threshold:
        return None
    return _alert(
        DAY_OVER_DAY,
        org_id,
        day,
        "tasks",
        f"{org_id} {day}: Tasks changed {total_change:+.1f}% day over day "
        f"({int(total_before):,} → {int(total_today):,}); today's events at yesterday's Tasks "
        f"per event predict {expected:,.0f}, so {unexplained:+.1f}% is not explained by the "
        f"event mix (threshold {threshold:g}%). Look for a drop in matched recipients, a "
        "setting change or a failed load.",
        tasks_yesterday=int(total_before),
        tasks_today=int(total_today),
        expected_tasks=round(expected, 1),
        change_pct=round(total_change, 1),
        unexplained_pct=round(unexplained, 1) if np.isfinite(unexplained) else None,
        tasks_per_event_yesterday={
            t: round(float(r), 3) for t, r in zip(types, ratio, strict=True) if not np.isnan(r)
        },
    )


def unnotified(alerts: list[dict], notified_ids: Iterable[str]) -> list[dict]:
    """Alerts not yet sent: the audit re-runs after every hourly load, the callback should not."""
    seen = set(notified_ids)
    return [a for a in alerts if a["id"] not in seen]


def load_callback(spec: str) -> Callable[[list[dict], Mapping[str, Any]], Any]:
    """``package.module:function`` -> the function; AlertCallbackError if it is not one."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AlertCallbackError(
            f"{ALERT_CALLBACK_ENV} must look like 'package.module:function', got {spec!r}"
        )
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise AlertCallbackError(f"{ALERT_CALLBACK_ENV}: {spec} is not callable")
    return target


def notify(
    alerts: list[dict],
    context: Mapping[str, Any] | None = None,
    callback: Callable[[list[dict], Mapping[str, Any]], Any] | None = None,
) -> int:
    """Log each alert as a warning, then hand them all to the user's callback, if any.

    The callback is ``callback(alerts, context)`` (``context`` is the Airflow task context),
    called once with every alert, from ``callback`` or the import path in
    ``ACTIVITY_SYNC_ALERT_CALLBACK``. A failing callback is not swallowed: the alert must
    not be lost silently, so the task fails and Airflow retries it.
    """
    for alert in alerts:
        log.warning("activity-sync audit alert [%s] %s", alert["kind"], alert["message"])
    if not alerts:
        return 0
    if callback is None and os.environ.get(ALERT_CALLBACK_ENV):
        callback = load_callback(os.environ[ALERT_CALLBACK_ENV])
    if callback is not None:
        callback(alerts, dict(context or {}))
    return len(alerts)


def notified_ids(root: Any, org_id: str, day: str) -> list[str]:
    """The ids of the alerts of one org's day that were sent already."""
    path = lake.audit_folder(root, org_id, day) / lake.AUDIT_NOTIFIED
    return list(read_json(path)["ids"]) if path.exists() else []


def mark_notified(root: Any, org_id: str, day: str, alerts: list[dict]) -> None:
    """Remember which alerts were sent, after the callback succeeded."""
    if not alerts:
        return
    ids = sorted(set(notified_ids(root, org_id, day)) | {a["id"] for a in alerts})
    out = lake.audit_folder(root, org_id, day)
    out.mkdir(parents=True, exist_ok=True)
    with (out / lake.AUDIT_NOTIFIED).open("w") as fh:
        fh.write(json.dumps({"ids": ids}, indent=2))


def send_alerts(
    results: Iterable[Mapping[str, Any]], root: Any, context: Mapping[str, Any] | None = None
) -> int:
    """Notify the alerts of these audits not sent before, then remember them as sent.

    Args:
        results: what ``step_audit`` returned per (org, day): ``org_id``, ``day``, ``alerts``.
        root: the lake root, where each audit folder keeps its ``notified.json``.
        context: handed to the callback (the Airflow task context).

    Returns:
        How many alerts were sent now.
    """
    fresh = [
        (r, unnotified(r["alerts"], notified_ids(root, r["org_id"], r["day"]))) for r in results
    ]
    sent = notify([a for _, alerts in fresh for a in alerts], context)
    for r, alerts in fresh:
        mark_notified(root, r["org_id"], r["day"], alerts)
    return sent
