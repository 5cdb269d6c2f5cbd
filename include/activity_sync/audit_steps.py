"""The steps of the daily audit DAG, as its tasks call them: ``steps.select_orgs`` →
``step_targets`` → ``step_audit`` per (org, day) → ``step_raise_alerts``.

Like the hourly steps (steps.py), each takes what Airflow provides (connections, the lake
root, the run's context) as arguments, so it runs the same in a test and on a worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from activity_sync import lake_upkeep
from activity_sync.audit import (
    AuditOptions,
    AuditTargetError,
    audit_targets,
    has_plan,
    planned_by,
    run_audit,
    send_alerts,
)
from activity_sync.reconcile import ReconcileOptions
from activity_sync.salesforce import SalesforceClient
from activity_sync.tenants import Org

log = logging.getLogger(__name__)


def step_targets(
    orgs: Sequence[Org],
    params: Mapping[str, Any],
    asset_extras: Iterable[Mapping[str, Any]],
    logical_date: datetime | None,
    run_after: datetime | None,
    root: Any,
) -> list[dict[str, str]]:
    """The (org, day) pairs an audit run covers (``audit.audit_targets`` says which).

    A day before the org's first planned hour is left out and logged: nothing was synced
    yet (the DAG was unpaused before the first load, or the org was added later), and a
    report of zeros would read as a day on which nobody sent an email. A later day without
    a plan is one the hourly runs missed entirely: it is audited, so its coverage alert
    names the hours not synced.

    Args:
        orgs: the orgs ``select_orgs`` chose.
        params: the run's params (``day``).
        asset_extras: the ``extra`` of each triggering Asset event.
        logical_date, run_after: the run's, from the Airflow context.
        root: the lake root, where the plans are looked for.

    Returns:
        ``[{"org_id": ..., "day": "YYYY-MM-DD"}]``, one mapped ``audit`` task each.
    """
    targets = audit_targets(
        orgs=[o.org_id for o in orgs],
        day=params.get("day"),
        asset_extras=asset_extras,
        logical_date=logical_date,
        run_after=run_after,
    )
    chosen = []
    for t in targets:
        org_id, day = t["org_id"], t["day"]
        if has_plan(root, org_id, day):
            chosen.append(t)
        elif planned_by(root, org_id, day):
            log.warning(
                "auditing %s %s although no hour of it was planned: the org was synced "
                "before, so the hourly runs missed this day; its coverage alert names the hours",
                org_id,
                day,
            )
            chosen.append(t)
        else:
            log.warning(
                "not auditing %s %s: no hour of %s was planned on or before that day "
                "(nothing synced yet); the audit runs once an hour of it is loaded",
                org_id,
                day,
                org_id,
            )
    log.info("auditing %d of %d (org, day) pairs: %s", len(chosen), len(targets), chosen)
    return chosen


def _param(params: Mapping[str, Any], name: str, default: Any) -> Any:
    """A param's value; an emptied form field (None) means its default."""
    value = params.get(name)
    return default if value is None else value


def step_audit(
    orgs: Mapping[str, Org],
    target: Mapping[str, str],
    root: Any,
    params: Mapping[str, Any],
    client_for: Callable[[str], SalesforceClient],
) -> dict[str, Any]:
    """Audit one org's day: count, reconcile, write the outputs; then the org's daily lake
    upkeep (compaction, vacuum past the history: lake_upkeep.py).

    Args:
        orgs: the configured orgs by org_id.
        target: one of ``step_targets``' pairs.
        root: the lake root.
        params: the run's params: ``reconcile`` (query Salesforce back, default on) and
            ``change_threshold_pct``; None means the default.
        client_for: opens a Salesforce client for a connection id
            (``airflow_adapter.salesforce_client``, the hourly steps' too); only called
            when reconciling.

    Returns:
        What ``step_raise_alerts`` needs: ``org_id``, ``day``, the headline and the alerts.

    Raises:
        AuditTargetError: the target's org is not in the orgs config.
    """
    org = orgs.get(target["org_id"])
    if org is None:
        raise AuditTargetError(
            f"org {target['org_id']!r} is not in the orgs config; add it or drop it from params.orgs"
        )
    reconciling = bool(_param(params, "reconcile", True))
    client = client_for(org.salesforce_conn_id) if reconciling else None
    threshold = _param(params, "change_threshold_pct", AuditOptions.change_threshold_pct)
    result = run_audit(
        root,
        org.org_id,
        target["day"],
        client=client,
        settings=org.settings,
        options=AuditOptions(change_threshold_pct=float(threshold)),
        reconcile_options=ReconcileOptions(external_id_field=org.external_id_field),
    )
    lake_upkeep.tidy(root, org.org_id)
    return {
        "org_id": org.org_id,
        "day": target["day"],
        "headline": result.document["headline"],
        "alerts": result.alerts,
    }


def step_raise_alerts(
    results: Iterable[Mapping[str, Any] | None], root: Any, context: Mapping[str, Any]
) -> int:
    """Send the alerts of this run's audits not sent before (log, then the user's callback).

    Args:
        results: ``step_audit``'s results, None for audits that failed.
        root: the lake root.
        context: the Airflow task context, handed to the callback.

    Returns:
        How many alerts were sent.
    """
    return send_alerts([r for r in results if r], root, context)
