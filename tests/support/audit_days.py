"""A known day of lake partitions, written by hand column for column as the planner and
loader write them, so that the audit, report, DAG and plugin tests depend on neither.

``write_hour`` writes one hour; ``sample_day`` a whole day whose counts the audit tests know.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from activity_sync import lake
from activity_sync.activity_kinds import DEAD_LETTER_COLUMNS, SALESFORCE_EVENTS, result_columns
from activity_sync.schema import (
    EVENT_RELATION_COLUMNS,
    REJECTED_COLUMNS,
    RELATION_COLUMNS,
    SALESFORCE_EVENT_COLUMNS,
    TASK_COLUMNS,
    event_key,
    task_key,
)

ORG = "acme"
DAY = "2026-11-20"
NOW = datetime(2026, 11, 21, 0, 30, tzinfo=UTC)


def task_row(event_id: str, event_type: str, part: str, who: str, who_count: int, what=None):
    return {
        "task_key": task_key(ORG, event_id, part, what),
        "org_id": ORG,
        "event_id": event_id,
        "event_type": event_type,
        "WhoId": who,
        "WhatId": what,
        "OwnerId": "005000000000001AAA",
        "Subject": "Email: hello",
        "Description": "",
        "ActivityDate": DAY,
        "Status": "Completed",
        "TaskSubtype": "Email",
        "who_count": who_count,
        "batch_index": 0,
    }


def contact_ids(prefix: str, n: int) -> list[str]:
    return [f"003{prefix}{i:012d}AAA" for i in range(n)]


def relation_rows(key: str, people: list[str]) -> list[dict]:
    return [
        {"task_key": key, "RelationId": p, "position": i, "is_primary": i == 0}
        for i, p in enumerate(people)
    ]


def write_hour(
    root: Path,
    hour: int,
    *,
    events: list[dict],
    tasks: list[dict],
    relations: list[dict],
    rejected: list[dict],
    summary: dict[str, Any],
    task_results: list[dict] | None = None,
    relation_results: list[dict] | None = None,
    dead_letter: list[dict] | None = None,
    org_id: str = ORG,
    day: str = DAY,
    salesforce_events: list[dict] | None = None,
    event_relations: list[dict] | None = None,
    event_results: list[dict] | None = None,
) -> None:
    """One hour's events, plan and (when ``task_results`` is given) load partitions.

    The R14 files (Salesforce Events, their relations and results) are written only when
    given, as partitions from before R14 lack them."""
    start = datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")
    ev = lake.partition(root, lake.EVENTS, org_id, start)
    ev.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(events).to_parquet(ev / lake.EVENTS_FILE, index=False)
    plan = lake.partition(root, lake.PLAN, org_id, start)
    plan.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(tasks, columns=TASK_COLUMNS).to_parquet(plan / lake.PLAN_TASKS, index=False)
    pd.DataFrame(relations, columns=RELATION_COLUMNS).to_parquet(
        plan / lake.PLAN_RELATIONS, index=False
    )
    pd.DataFrame(rejected, columns=REJECTED_COLUMNS).to_parquet(
        plan / lake.PLAN_REJECTED, index=False
    )
    (plan / lake.PLAN_SUMMARY).write_text(
        json.dumps({"org_id": org_id, "interval_start": start.isoformat(), **summary})
    )
    if salesforce_events is not None:
        pd.DataFrame(salesforce_events, columns=SALESFORCE_EVENT_COLUMNS).to_parquet(
            plan / lake.PLAN_SALESFORCE_EVENTS, index=False
        )
        pd.DataFrame(event_relations or [], columns=EVENT_RELATION_COLUMNS).to_parquet(
            plan / lake.PLAN_EVENT_RELATIONS, index=False
        )
    if task_results is None:
        return
    loaded = lake.partition(root, lake.LOADED, org_id, start)
    loaded.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        task_results,
        columns=["task_key", "Id", "created", "success", "error_code", "error_message", "attempts"],
    ).to_parquet(loaded / lake.TASK_RESULTS, index=False)
    pd.DataFrame(
        relation_results or [],
        columns=[
            "task_key",
            "TaskId",
            "RelationId",
            "position",
            "status",
            "error_code",
            "error_message",
        ],
    ).to_parquet(loaded / lake.RELATION_RESULTS, index=False)
    pd.DataFrame(dead_letter or [], columns=DEAD_LETTER_COLUMNS).to_parquet(
        loaded / lake.DEAD_LETTER, index=False
    )
    if event_results is not None:
        pd.DataFrame(event_results, columns=result_columns(SALESFORCE_EVENTS)).to_parquet(
            loaded / lake.EVENT_RESULTS, index=False
        )
    (loaded / lake.LOAD_SUMMARY).write_text(json.dumps({"org_id": org_id}))


def hour_summary(mode: str, reason: str, sf_on: bool, **counts: int) -> dict[str, Any]:
    return {
        "events_rejected": 0,
        "recipients_excluded": 0,
        "recipients_unmatched": 0,
        "individual_tasks": 0,
        **counts,
        "mode": mode,
        "mode_reason": reason,
        "salesforce_shared_activities": sf_on,
        "setting_shared_activities": True,
        "fallback": not sf_on,
    }


def load_results(tasks: list[dict], ids: dict[str, str]) -> list[dict]:
    return [
        {
            "task_key": t["task_key"],
            "Id": ids[t["task_key"]],
            "created": True,
            "success": True,
            "error_code": None,
            "error_message": None,
            "attempts": 1,
        }
        for t in tasks
    ]


def event_row(event_id: str, event_type: str, sender: str) -> dict:
    return {"event_id": event_id, "org_id": ORG, "type": event_type, "sender": sender}


def sample_day(root: Path, day: str = DAY, org_id: str = ORG) -> dict[str, Any]:
    """A day with known figures: hour 09 shared, hour 10 a fallback hour with a dead letter.

    09: alice sends e1 to 60 Contacts (a Task of 50 and one of 10) and gets an open (e2);
        bob sends e3 to 3 Contacts whose primary has 2 Opportunities (2 copies of 3) and a
        reply from an unknown address (e4, rejected). The planner's exact individual-mode
        figure is 65 (bob's Contacts sit on other Accounts), the per-sender estimate 67.
    10: Salesforce has Shared Activities off: alice's e5 to 2 Contacts makes 2 Tasks; one
        is dead-lettered.
    """
    alice, bob = "Alice@Acme.com ", "bob@acme.com"
    sixty = contact_ids("a", 60)
    three = contact_ids("b", 3)
    t1 = task_row("e1", "sent", "b0", sixty[0], 50)
    t2 = task_row("e1", "sent", "b1", sixty[50], 10)
    t3 = task_row("e2", "open", f"w{sixty[1]}", sixty[1], 1)
    t4 = task_row("e3", "sent", "b0", three[0], 3, "006000000000001AAA")
    t5 = task_row("e3", "sent", "b0", three[0], 3, "006000000000002AAA")
    hour9 = [t1, t2, t3, t4, t5]
    relations9 = (
        relation_rows(t1["task_key"], sixty[:50])
        + relation_rows(t2["task_key"], sixty[50:])
        + relation_rows(t3["task_key"], [sixty[1]])
        + relation_rows(t4["task_key"], three)
        + relation_rows(t5["task_key"], three)
    )
    ids = {t["task_key"]: f"00T{i:015d}" for i, t in enumerate(hour9)}
    write_hour(
        root,
        9,
        day=day,
        org_id=org_id,
        events=[
            event_row("e1", "sent", alice),
            event_row("e2", "open", alice),
            event_row("e3", "sent", bob),
            event_row("e4", "reply", bob),
        ],
        tasks=hour9,
        relations=relations9,
        rejected=[
            {"event_id": "e1", "email": "x@competitor.com", "reason": "excluded", "detail": ""},
            {"event_id": "e1", "email": "ceo@acme.com", "reason": "excluded", "detail": ""},
            {"event_id": "e1", "email": "not-an-email", "reason": "invalid_email", "detail": ""},
            {"event_id": "e3", "email": "b@x.com", "reason": "bcc_not_synced", "detail": ""},
            {"event_id": "e4", "email": "who@x.com", "reason": "unmatched", "detail": ""},
        ],
        summary=hour_summary(
            "shared",
            "shared activities on",
            True,
            events=4,
            tasks=5,
            shared_tasks=4,
            relations=67,
            individual_mode_tasks=65,
        ),
        task_results=load_results(hour9, ids),
    )
    pair = contact_ids("c", 2)
    t6 = task_row("e5", "sent", f"w{pair[0]}", pair[0], 1)
    t7 = task_row("e5", "sent", f"w{pair[1]}", pair[1], 1)
    write_hour(
        root,
        10,
        day=day,
        org_id=org_id,
        events=[event_row("e5", "sent", alice)],
        tasks=[t6, t7],
        relations=relation_rows(t6["task_key"], [pair[0]])
        + relation_rows(t7["task_key"], [pair[1]]),
        rejected=[],
        summary=hour_summary(
            "individual",
            "Salesforce org has Shared Activities off",
            False,
            events=1,
            tasks=2,
            shared_tasks=0,
            relations=2,
            individual_mode_tasks=2,
        ),
        task_results=[
            *load_results([t6], {t6["task_key"]: "00T000000000000010"}),
            {
                "task_key": t7["task_key"],
                "Id": None,
                "created": False,
                "success": False,
                "error_code": "FIELD_INTEGRITY_EXCEPTION",
                "error_message": "bad",
                "attempts": 1,
            },
        ],
        dead_letter=[
            {
                "object": "Task",
                "task_key": t7["task_key"],
                "RelationId": None,
                "error_code": "FIELD_INTEGRITY_EXCEPTION",
                "error_message": "bad",
                "attempts": 1,
            }
        ],
    )
    return {"tasks": [*hour9, t6, t7], "relations9": relations9, "ids": ids}


def meeting_hour(root: Path, hour: int = 11, *, failed: bool = False) -> dict[str, Any]:
    """Carol's meeting m1 with five Contacts, made one Salesforce Event (R14), where
    individual mode would have made five Tasks; dave's m2 with a Lead, its own Event, which
    the load refused when ``failed``."""
    five = contact_ids("m", 5)
    lead = "00Q000000000000001AAA"[:18]
    carol_key = event_key(ORG, "m1", "b0", "001000000000001AAA")
    dave_key = event_key(ORG, "m2", f"w{lead}", None)

    def sfevent_row(key: str, event_id: str, who: str, who_count: int) -> dict:
        return {
            "event_key": key,
            "org_id": ORG,
            "event_id": event_id,
            "WhoId": who,
            "WhatId": None,
            "OwnerId": "005000000000001AAA",
            "Subject": "Meeting: plan",
            "StartDateTime": f"{DAY}T{hour:02d}:00:00.000Z",
            "EndDateTime": f"{DAY}T{hour:02d}:30:00.000Z",
            "DurationInMinutes": 30,
            "IsAllDayEvent": False,
            "EventSubtype": "Event",
            "who_count": who_count,
            "batch_index": 0,
        }

    def result(key: str, ok: bool) -> dict:
        return {
            "event_key": key,
            "Id": "00U000000000000001" if ok else None,
            "created": ok,
            "success": ok,
            "error_code": None if ok else "FIELD_INTEGRITY_EXCEPTION",
            "error_message": None,
            "attempts": 1,
        }

    write_hour(
        root,
        hour,
        events=[
            event_row("m1", "meeting", "carol@acme.com"),
            event_row("m2", "meeting", "dave@acme.com"),
        ],
        tasks=[],
        relations=[],
        rejected=[],
        summary={
            **hour_summary("shared", "shared activities on", True, events=2, tasks=0, relations=0),
            "individual_mode_tasks": 0,
            "salesforce_events": 2,
            "event_relations": 6,
            "individual_mode_salesforce_events": 6,
            "individual_mode_salesforce_events_by_sender": {
                "carol@acme.com": 5,
                "dave@acme.com": 1,
            },
        },
        salesforce_events=[
            sfevent_row(carol_key, "m1", five[0], 5),
            sfevent_row(dave_key, "m2", lead, 1),
        ],
        event_relations=[
            {"event_key": carol_key, "RelationId": p, "position": i, "is_primary": i == 0}
            for i, p in enumerate(five)
        ]
        + [{"event_key": dave_key, "RelationId": lead, "position": 0, "is_primary": True}],
        task_results=[],
        event_results=[result(carol_key, True), result(dave_key, not failed)],
        dead_letter=[
            {
                "object": "Event",
                "event_key": dave_key,
                "error_code": "FIELD_INTEGRITY_EXCEPTION",
                "attempts": 1,
            }
        ]
        if failed
        else [],
    )
    return {"carol": carol_key, "dave": dave_key}
