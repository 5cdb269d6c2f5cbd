"""What a load reports: per-row results, the dead letter and the summary's counts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from activity_sync import lake
from activity_sync.activity_kinds import (
    DEAD_LETTER_COLUMNS,
    SALESFORCE_EVENTS,
    TASKS,
    ActivityKind,
    RelationStatus,
    relation_result_columns,
    result_columns,
)


@dataclass
class LoadResult:
    """The outputs of a load, as :func:`write_load_result` writes them."""

    task_results: pd.DataFrame
    relation_results: pd.DataFrame
    dead_letter: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    event_results: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=result_columns(SALESFORCE_EVENTS))
    )
    event_relation_results: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=relation_result_columns(SALESFORCE_EVENTS))
    )


def dead_letter(
    task_results: pd.DataFrame,
    relation_results: pd.DataFrame,
    row_attempts: int,
    kind: ActivityKind = TASKS,
) -> pd.DataFrame:
    """Step 5: everything planned of one kind that is not in Salesforce, with the reason.

    The activities and relations that failed for good, and the relations of failed
    activities (never sent: ``TASK_FAILED`` or ``SALESFORCE_EVENT_FAILED``, the message
    naming the activity's error), so the dead letter alone lists all that is missing.
    """
    failed_tasks = task_results[~task_results["success"].astype(bool)]
    failed_relations = relation_results[relation_results["status"].eq(RelationStatus.FAILED)]
    orphans = relation_results[relation_results["status"].eq(kind.parent_failed)]
    task_error = failed_tasks.set_index(kind.key)
    orphan_code = orphans[kind.key].map(task_error["error_code"]).fillna("").astype(str)
    orphan_message = orphans[kind.key].map(task_error["error_message"]).fillna("").astype(str)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "object": kind.object_name,
                    kind.key: failed_tasks[kind.key],
                    "RelationId": None,
                    "error_code": failed_tasks["error_code"],
                    "error_message": failed_tasks["error_message"],
                    "attempts": failed_tasks["attempts"],
                }
            ),
            pd.DataFrame(
                {
                    "object": kind.relation_object,
                    kind.key: failed_relations[kind.key],
                    "RelationId": failed_relations["RelationId"],
                    "error_code": failed_relations["error_code"],
                    "error_message": failed_relations["error_message"],
                    "attempts": row_attempts,
                }
            ),
            pd.DataFrame(
                {
                    "object": kind.relation_object,
                    kind.key: orphans[kind.key],
                    "RelationId": orphans["RelationId"],
                    "error_code": kind.parent_failed_code,
                    "error_message": f"its {kind.object_name} was not loaded: "
                    + orphan_code
                    + ": "
                    + orphan_message,
                    "attempts": 0,
                }
            ),
        ],
        ignore_index=True,
    ).reindex(columns=DEAD_LETTER_COLUMNS)


def counts(
    planned: pd.DataFrame,
    planned_relations: pd.DataFrame,
    task_results: pd.DataFrame,
    relation_results: pd.DataFrame,
    kind: ActivityKind = TASKS,
) -> dict[str, int]:
    """The summary's counts of one kind: ``tasks_*`` and ``relations_*``, or
    ``salesforce_events_*`` and ``event_relations_*``."""
    ok = task_results["success"].astype(bool)
    created = task_results["created"].astype(bool)
    status = relation_results["status"].value_counts()
    activities, relations = (
        ("tasks", "relations") if kind is TASKS else ("salesforce_events", "event_relations")
    )
    counts = {
        f"{activities}_planned": len(planned),
        f"{activities}_created": int((ok & created).sum()),
        f"{activities}_updated": int((ok & ~created).sum()),
        f"{activities}_failed": int((~ok).sum()),
        f"{relations}_planned": int((~planned_relations["is_primary"].astype(bool)).sum()),
        f"{relations}_inserted": int(status.get(RelationStatus.INSERTED, 0)),
        f"{relations}_existing": int(status.get(RelationStatus.EXISTING, 0)),
        f"{relations}_failed": int(status.get(RelationStatus.FAILED, 0)),
        f"{relations}_{kind.parent_failed}": int(status.get(kind.parent_failed, 0)),
    }
    if kind.parent_flag:
        counts[f"{relations}_related"] = int(status.get(RelationStatus.RELATED, 0))
    return counts


def write_load_result(result: LoadResult, out_dir: Any) -> None:
    """Write the outputs; ``out_dir`` may be a Path or an ObjectStoragePath."""
    out = out_dir if not isinstance(out_dir, str) else Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (
        (lake.TASK_RESULTS, result.task_results),
        (lake.RELATION_RESULTS, result.relation_results),
        (lake.EVENT_RESULTS, result.event_results),
        (lake.EVENT_RELATION_RESULTS, result.event_relation_results),
        (lake.DEAD_LETTER, result.dead_letter),
    ):
        with (out / name).open("wb") as fh:
            frame.to_parquet(fh, index=False)
    with (out / lake.LOAD_SUMMARY).open("w") as fh:
        fh.write(json.dumps(result.summary, indent=2, sort_keys=True))
