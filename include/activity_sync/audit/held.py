"""What Salesforce should hold for a day: its plans, corrected by the ledger (issue 10).

The reconciliation compares Salesforce with this. The plans say what each hour meant to
load; the ledger (ledger.py) records what the loads left, and so knows two things the
plans cannot:

- an event whose latest load was another hour's (delivered again and re-planned there):
  the day's plan rows for it are superseded, and what a re-plan deleted is not missing;
- activities no plan holds any more that stay in Salesforce on purpose (someone else
  edited a Task a re-plan dropped; a refused delete): ours, recorded, not extra.

Planned activities the ledger lacks stay expected, so a failed load is still reported
missing with its cause.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from activity_sync import ledger
from activity_sync.activity_kinds import SALESFORCE_EVENTS, TASKS, ActivityKind
from activity_sync.audit.inputs import DayInputs
from activity_sync.reconcile import PlannedDay


def _labels(day: str, hours: pd.Series) -> pd.Series:
    """The ledger's ``hour`` label (``YYYY-MM-DDTHH``) of each partition hour (0-23)."""
    return day + "T" + hours.astype(int).astype(str).str.zfill(2)


def _superseded(planned: pd.DataFrame, day: str, owner: pd.Series) -> pd.Series:
    """The planned rows whose event a later load of another hour owns."""
    held_by = planned["event_id"].map(owner)
    return held_by.notna() & held_by.ne(_labels(day, planned["hour"]))


def _one_kind(
    kind: ActivityKind, planned: PlannedDay, rows: pd.DataFrame, day: str, owner: pd.Series
) -> PlannedDay:
    key = kind.key
    activities = planned.planned
    if len(activities):
        activities = activities[~_superseded(activities, day, owner)]
    keys = set(activities[key].dropna())
    relations = planned.relations[planned.relations[key].isin(keys)]
    # Ours in Salesforce that no plan of the day holds any more (kept on purpose).
    recorded = rows[rows["object"].fillna(TASKS.object_name).eq(kind.object_name)]
    recorded = recorded[~recorded["task_key"].isin(keys)]
    extra = pd.DataFrame(
        {
            key: recorded["task_key"],
            "event_id": recorded["event_id"],
            "WhoId": recorded["who_id"],
            "hour": recorded["hour"].str.slice(11, 13).astype(int),
        }
    )
    people = (
        recorded[["task_key", "relation_ids"]]
        .explode("relation_ids")
        .dropna()
        .rename(columns={"task_key": key, "relation_ids": "RelationId"})
    )
    loaded = pd.DataFrame({key: recorded["task_key"], "Id": recorded["task_id"], "success": True})
    return PlannedDay(
        pd.concat([activities, extra], ignore_index=True),
        pd.concat([relations, people], ignore_index=True),
        pd.concat([planned.results, loaded], ignore_index=True),
        planned.relation_results,
    )


def expected(
    root: Any, inputs: DayInputs, settled: Iterable[int], days: Iterable[str]
) -> tuple[PlannedDay, PlannedDay, set[str]]:
    """The Tasks and the Salesforce Events the day's settled hours should have left in
    Salesforce, and every key the ledger records for ``days`` (the neighbouring days, to
    tell extra activities apart).

    Args:
        root: the lake root.
        inputs: the day as the lake holds it.
        settled: the hours (0-23) whose loads are done.
        days: the UTC days whose keys count as known.
    """
    settled = set(settled)
    recorded = ledger.day_rows(root, inputs.org_id, {*days, inputs.day})
    rows = recorded[
        recorded["hour"].isin(_labels(inputs.day, pd.Series(sorted(settled), dtype="int64")))
    ]
    events = pd.concat(
        [inputs.tasks["event_id"], inputs.salesforce_events["event_id"], rows["event_id"]]
    ).dropna()
    owner = ledger.owners(root, inputs.org_id, events.drop_duplicates())
    rows = rows[rows["event_id"].map(owner).eq(rows["hour"]) & rows["task_key"].notna()]

    def settled_only(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["hour"].isin(settled)]

    days_ = {
        TASKS: PlannedDay(
            settled_only(inputs.tasks),
            settled_only(inputs.relations),
            settled_only(inputs.task_results),
            settled_only(inputs.relation_results),
        ),
        SALESFORCE_EVENTS: PlannedDay(
            settled_only(inputs.salesforce_events),
            settled_only(inputs.event_relations),
            settled_only(inputs.event_results),
            settled_only(inputs.event_relation_results),
        ),
    }
    tasks, salesforce_events = (
        _one_kind(kind, day, rows, inputs.day, owner) for kind, day in days_.items()
    )
    known = set(recorded.loc[recorded["date"].isin(set(days)), "task_key"].dropna())
    return tasks, salesforce_events, known
