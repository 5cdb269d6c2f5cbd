"""audit/held.py: what Salesforce should hold for a day is its plans corrected by the
ledger (issue 10, item 6): superseded plan rows leave, Tasks kept on purpose join."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from activity_sync import ledger
from activity_sync.audit import held
from activity_sync.audit.inputs import DayInputs

DAY = "2026-11-26"
H14 = datetime(2026, 11, 26, 14, tzinfo=UTC)
H17 = datetime(2026, 11, 26, 17, tzinfo=UTC)


def _ledger_tasks(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "object": "Task",
            "event_id": [e for e, _, _ in rows],
            "task_key": [k for _, k, _ in rows],
            "task_id": [f"00T{k}" for _, k, _ in rows],
            "who_id": "003a",
            "what_id": None,
            "state": [s for _, _, s in rows],
        }
    )


def _day(tasks: list[tuple[int, str, str]]) -> DayInputs:
    empty = pd.DataFrame(columns=["hour"])
    return DayInputs(
        org_id="acme",
        day=DAY,
        summaries=empty,
        events=empty,
        tasks=pd.DataFrame(
            {
                "hour": [h for h, _, _ in tasks],
                "task_key": [k for _, _, k in tasks],
                "event_id": [e for _, e, _ in tasks],
                "WhoId": "003a",
            }
        ),
        relations=pd.DataFrame(
            {"hour": [14], "task_key": ["k1"], "RelationId": ["003a"], "is_primary": [True]}
        ),
        rejected=empty,
        task_results=pd.DataFrame(columns=["hour", "task_key", "Id", "success", "error_code"]),
        relation_results=pd.DataFrame(
            columns=["hour", "task_key", "TaskId", "RelationId", "status", "error_code"]
        ),
        dead_letter=empty,
    )


def test_plan_rows_of_an_event_a_later_hour_replanned_are_superseded_and_kept_tasks_are_expected(
    tmp_path,
):
    # 14:00 loaded e1 (k1) and e2 (k2); 17:00 re-planned e2 as k2b; 14:00's re-plan kept
    # an edited Task k0 no plan holds.
    ledger.record_hour(
        tmp_path,
        "acme",
        H14,
        ledger.ledger_rows(
            H14,
            ["e1", "e2"],
            _ledger_tasks(
                ("e1", "k1", "loaded"), ("e2", "k2", "loaded"), ("e1", "k0", "kept_edited")
            ),
            pd.DataFrame({"task_key": ["k0"], "RelationId": ["003z"]}),
            now=H14,
        ),
    )
    ledger.record_hour(
        tmp_path,
        "acme",
        H17,
        ledger.ledger_rows(
            H17,
            ["e2"],
            _ledger_tasks(("e2", "k2b", "loaded")),
            pd.DataFrame({"task_key": [], "RelationId": []}),
            now=H17,
        ),
    )
    day = _day([(14, "e1", "k1"), (14, "e2", "k2"), (17, "e2", "k2b")])

    tasks, events, known = held.expected(tmp_path, day, {14, 17}, [DAY])

    assert sorted(tasks.planned["task_key"]) == ["k0", "k1", "k2b"]  # k2 superseded
    results = tasks.results.set_index("task_key")
    assert results.loc["k0", "Id"] == "00Tk0" and bool(results.loc["k0", "success"])
    relations = tasks.relations[["task_key", "RelationId"]].itertuples(index=False)
    assert ("k0", "003z") in set(map(tuple, relations))
    assert events.planned.empty
    assert known == {"k0", "k1", "k2", "k2b"}


def test_an_hour_still_loading_expects_nothing_and_a_day_without_a_ledger_expects_the_plans(
    tmp_path,
):
    day = _day([(14, "e1", "k1"), (15, "e3", "k3")])
    tasks, _, known = held.expected(tmp_path, day, {14}, [DAY])
    assert list(tasks.planned["task_key"]) == ["k1"] and known == set()
