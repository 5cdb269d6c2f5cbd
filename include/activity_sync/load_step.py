"""The hourly DAG's load step, and its dry-run twin: load the hour's plan, converge a
re-plan, write the loaded partition and the ledger, pin the plan's basis (``steps.py``
re-exports both; ``shard_run`` calls them through it).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import pandas as pd

from activity_sync import lake, ledger
from activity_sync.converge import (
    DEFAULT_MAX_DELETE_SHARE,
    Convergence,
    DeleteCapExceeded,
    RemovalOutcome,
    apply_deletions,
    carried_over,
    check_cap,
    hour_rows,
    plan_convergence,
)
from activity_sync.job_ledger import LakeJobLedger
from activity_sync.load import LoadOptions, load_plan
from activity_sync.load_results import write_load_result
from activity_sync.plan import read_plan
from activity_sync.plan_basis import BasisSource, PlanBasis, write_basis
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import ALREADY_SYNCED, Plan
from activity_sync.tenants import Org

log = logging.getLogger(__name__)


def step_load(
    org: Org,
    client: SalesforceClient,
    root: Any,
    start: datetime,
    options: LoadOptions | None = None,
    *,
    replan: bool = False,
    max_delete_share: float = DEFAULT_MAX_DELETE_SHARE,
) -> dict[str, Any]:
    """Load the hour's plan into Salesforce, write the loaded partition and the ledger.

    A re-plan then converges: Tasks and relations that earlier loads made for the hour's
    events and the new plan lacks are deleted (``converge``), except Tasks someone else
    edited, which are kept and reported. Over ``max_delete_share`` nothing is changed.

    Args:
        org: the org; its ``external_id_field`` is the upsert key unless ``options`` say.
        client: the org's Salesforce.
        root: the lake root.
        start: the hour's start (names the partitions).
        options: load options (default: the org's external-ID field).
        replan: the plan is a re-plan: converge Salesforce to it.
        max_delete_share: the most of the hour's earlier Tasks a re-plan may delete.

    Returns:
        The load summary (Tasks created/updated/deleted, relations inserted/deleted, edited
        Tasks kept, dead letters…).

    Raises:
        DeleteCapExceeded: a re-plan over ``max_delete_share``; nothing was changed.
    """
    options = options or LoadOptions(external_id_field=org.external_id_field)
    with lake.local_copy(lake.partition(root, lake.PLAN, org.org_id, start)) as plan_dir:
        planned = read_plan(plan_dir)
    covered = _covered_events(root, org.org_id, start, planned)
    conv = None
    if replan:
        conv = plan_convergence(
            client, root, org.org_id, covered, planned, options.external_id_field
        )
        check_cap(conv, max_delete_share, org.org_id, start)
    loaded = lake.partition(root, lake.LOADED, org.org_id, start)
    result = load_plan(planned, client, options, LakeJobLedger(loaded / lake.JOB_LEDGER))
    result.summary.update(
        {
            "org_id": org.org_id,
            "interval_start": start.isoformat(),
            "mode": planned.summary.get("mode"),
            "replan": replan,
        }
    )
    if conv is not None:
        done = apply_deletions(client, conv)
        refused = done.pop("failed_keys")
        kept = conv.kept.assign(state=ledger.TaskState.KEPT_EDITED.value)
        carried = pd.concat(
            [kept, carried_over(conv.prior, planned, refused)] if refused else [kept],
            ignore_index=True,
        )
        result.summary.update(done)
        result.summary["relations_to_delete"] = len(conv.stale_relations)
        removals = _removals(conv, refused)
    else:
        carried = carried_over(ledger.current(root, org.org_id, covered), planned)
        result.summary.update(
            {
                "tasks_deleted": 0,
                "salesforce_events_deleted": 0,
                "relations_deleted": 0,
                "event_invitees_unrelated": 0,
                "tasks_kept_edited": 0,
            }
        )
        removals = pd.DataFrame(columns=REMOVAL_COLUMNS)
    write_load_result(result, loaded)
    with (loaded / lake.REMOVALS).open("wb") as fh:
        removals.to_parquet(fh, index=False)
    ledger.record_hour(root, org.org_id, start, hour_rows(start, covered, planned, result, carried))
    _pin_basis(org, root, start)
    return result.summary


def step_preview(
    org: Org,
    client: SalesforceClient,
    root: Any,
    start: datetime,
    *,
    replan: bool = False,
    max_delete_share: float = DEFAULT_MAX_DELETE_SHARE,
) -> dict[str, Any]:
    """What loading the hour's plan would do, without doing it (a dry run).

    Tasks to create (keys the ledger does not hold) or update (keys it holds), and for a
    re-plan the Tasks and relations that would be deleted, the edited Tasks that would be
    kept, and whether the delete cap would stop it. Reads the ledger and, for a re-plan,
    Salesforce (queries only). Written to ``plan/…/preview.json``.

    Returns:
        The counts, as written.
    """
    with lake.local_copy(lake.partition(root, lake.PLAN, org.org_id, start)) as plan_dir:
        planned = read_plan(plan_dir)
    covered = _covered_events(root, org.org_id, start, planned)
    prior = ledger.current(root, org.org_id, covered)
    held = set(prior["task_key"].dropna())
    updates = int(planned.tasks["task_key"].isin(held).sum())
    preview: dict[str, Any] = {
        "replan": replan,
        "tasks_to_create": len(planned.tasks) - updates,
        "tasks_to_update": updates,
        "tasks_to_delete": 0,
        "tasks_kept_edited": 0,
        "relations_to_delete": 0,
        "over_delete_cap": None,
    }
    if replan:
        conv = plan_convergence(client, root, org.org_id, covered, planned, org.external_id_field)
        preview.update(conv.counts())
        try:
            check_cap(conv, max_delete_share, org.org_id, start)
            preview["over_delete_cap"] = None
        except DeleteCapExceeded as exc:
            preview["over_delete_cap"] = str(exc)
    with (lake.partition(root, lake.PLAN, org.org_id, start) / lake.PLAN_PREVIEW).open("w") as fh:
        fh.write(json.dumps(preview, indent=2, sort_keys=True))
    log.info("dry run %s %s: %s", org.org_id, start.isoformat(), preview)
    return preview


REMOVAL_COLUMNS = ["object", "task_key", "task_id", "event_id", "outcome"]


def _removals(conv: Convergence, refused: list[str]) -> pd.DataFrame:
    """removals.parquet: each Task a re-plan dropped and what became of it (the audit's)."""
    deleted = conv.delete[~conv.delete["task_key"].isin(refused)]
    failed = conv.delete[conv.delete["task_key"].isin(refused)]
    parts = [
        (deleted, RemovalOutcome.DELETED),
        (failed, RemovalOutcome.DELETE_FAILED),
        (conv.kept, RemovalOutcome.KEPT_EDITED),
    ]
    return pd.concat(
        [frame[REMOVAL_COLUMNS[:-1]].assign(outcome=str(o)) for frame, o in parts],
        ignore_index=True,
    ).reindex(columns=REMOVAL_COLUMNS)


def _covered_events(root: Any, org_id: str, start: datetime, planned: Plan) -> pd.Series:
    """The events the hour's load stands for in the ledger: the hour's events, less those
    another hour's load already wrote (``already_synced``) and lines without an id."""
    with lake.local_copy(lake.partition(root, lake.EVENTS, org_id, start)) as events_dir:
        ids = pd.read_parquet(events_dir / lake.EVENTS_FILE, columns=["event_id"])["event_id"]
    skipped = planned.rejected.loc[planned.rejected["reason"].eq(ALREADY_SYNCED), "event_id"]
    ids = ids.dropna()
    return ids[~ids.isin(skipped)].drop_duplicates()


def _pin_basis(org: Org, root: Any, start: datetime) -> None:
    """After a load: record the plan's basis as the hour's, unless it already was (a
    re-run of a pinned hour). A plan without one (written by an older version) pins none."""
    path = lake.partition(root, lake.PLAN, org.org_id, start) / lake.PLAN_BASIS
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as reader:
        basis = PlanBasis(**json.load(reader))
    if basis.source != BasisSource.PINNED:
        write_basis(root, org.org_id, start, basis)
