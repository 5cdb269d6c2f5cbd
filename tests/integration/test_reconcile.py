"""reconcile.py against the local Salesforce emulator over HTTP, and ``compare`` on its own.

A small plan is loaded with the product's loader (so the keys, Ids and relations are what
a real run leaves), then Salesforce is changed behind the plan's back with
simple-salesforce: a deleted Task must show as missing, a second Task with the same key
as duplicated, a Task with our prefix that no plan holds as extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from activity_sync import audit, lake
from activity_sync.load import LoadOptions, load_plan
from activity_sync.load_results import LoadResult, write_load_result
from activity_sync.plan import write_plan
from activity_sync.reconcile import (
    DIFFERENCE_COLUMNS,
    ReconcileOptions,
    SalesforceDay,
    _chunks,
    compare,
    reconcile,
)
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import RELATION_COLUMNS, SUMMARY_KEYS, TASK_COLUMNS, Plan, task_key
from activity_sync.settings import parse_settings
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD as EXT

ORG = "acme"
DAY = "2026-11-20"


@dataclass
class Loaded:
    plan: Plan
    result: LoadResult
    client: SalesforceClient
    contacts: list[str]
    sf: object

    def task_id(self, key: str) -> str:
        results = self.result.task_results.set_index("task_key")
        return results.loc[key, "Id"]

    def run(self, **options) -> dict:
        return reconcile(
            self.client,
            self.plan.tasks,
            self.plan.relations,
            self.result.task_results,
            self.result.relation_results,
            lambda: set(),
            ReconcileOptions(**options),
        )


def _task(event_id: str, part: str, who: str, who_count: int, what: str | None) -> dict:
    return {
        "task_key": task_key(ORG, event_id, part, what),
        "org_id": ORG,
        "event_id": event_id,
        "event_type": "sent",
        "WhoId": who,
        "WhatId": what,
        "OwnerId": None,
        "Subject": f"Email: {event_id}",
        "Description": "hello",
        "ActivityDate": DAY,
        "Status": "Completed",
        "TaskSubtype": "Email",
        "who_count": who_count,
        "batch_index": 0,
    }


def _plan(contacts: list[dict], shared: bool = True) -> Plan:
    """e1 to three Contacts (one shared Task, or one each), e2 to a fourth Contact."""
    c = [r["Id"] for r in contacts]
    account = contacts[0]["AccountId"]
    one_each = [("e1", f"w{p}", [p]) for p in c[:3]]
    groups = [("e1", "b0", c[:3])] if shared else one_each
    groups.append(("e2", f"w{c[3]}", [c[3]]))
    tasks, relations = [], []
    for event_id, part, people in groups:
        what = account if event_id == "e1" else None
        t = _task(event_id, part, people[0], len(people), what)
        tasks.append(t)
        relations += [
            {"task_key": t["task_key"], "RelationId": p, "position": i, "is_primary": i == 0}
            for i, p in enumerate(people)
        ]
    summary = dict.fromkeys(SUMMARY_KEYS, 0)
    summary.update(
        events=2,
        tasks=len(tasks),
        relations=len(relations),
        individual_mode_tasks=4,
        mode="shared" if shared else "individual",
        mode_reason="shared activities on"
        if shared
        else "Salesforce org has Shared Activities off",
        rejected_by_reason={},
    )
    return Plan(
        pd.DataFrame(tasks, columns=TASK_COLUMNS),
        pd.DataFrame(relations, columns=RELATION_COLUMNS),
        pd.DataFrame(columns=["event_id", "email", "reason", "detail"]),
        summary,
    )


def _load(emulator, shared: bool = True) -> Loaded:
    sf = emulator.simple_salesforce()
    contacts = sf.query(
        "SELECT Id, AccountId FROM Contact WHERE AccountId != null ORDER BY Id LIMIT 6"
    )["records"]
    client = SalesforceClient(emulator.simple_salesforce, poll_wait=0.05, backoff=0.01)
    plan = _plan(contacts, shared)
    result = load_plan(plan, client, LoadOptions(row_retry_wait=0))
    assert result.summary["tasks_failed"] == 0 and result.summary["relations_failed"] == 0
    return Loaded(plan, result, client, [r["Id"] for r in contacts], sf)


@pytest.fixture
def loaded(fresh_emulator) -> Loaded:
    return _load(fresh_emulator)


def _kinds(reconciliation: dict) -> list[tuple[str, str, str]]:
    return sorted((d["object"], d["kind"], d["task_key"]) for d in reconciliation["differences"])


def test_salesforce_holding_what_was_loaded_reconciles_without_differences(loaded) -> None:
    result = loaded.run()
    assert result["status"] == "ok"
    assert result["differences"] == []
    assert (result["tasks_expected"], result["tasks_found"]) == (2, 2)
    assert result["relations_expected"] == 4
    assert result["relations_checked_in"] == "TaskRelation"
    # The Tasks by key, ours on their date (for extras), their TaskRelations: nothing per row.
    assert result["api_calls"] == 3
    assert result["dates_scanned"] == [DAY] and result["other_days_tasks"] == 0


def test_a_task_deleted_in_salesforce_shows_as_missing_with_its_cause(loaded) -> None:
    shared_key = loaded.plan.tasks["task_key"].iloc[0]
    loaded.sf.Task.delete(loaded.task_id(shared_key))
    result = loaded.run()
    assert result["status"] == "differences"
    assert _kinds(result) == [("Task", "missing", shared_key)]
    (difference,) = result["differences"]
    assert difference["Id"] == loaded.task_id(shared_key)
    assert difference["cause"] == "deleted or changed in Salesforce after the load"
    assert result["counts"]["missing_tasks"] == 1
    assert result["summary"] == "1 missing Task"


def test_a_second_task_with_the_same_key_shows_as_duplicated(loaded, fresh_emulator) -> None:
    """Salesforce refuses a second Task with the key while the field is Unique; an admin
    who unticks Unique (or an import before it was set) lets one in."""
    fresh_emulator.set_settings(task_external_id_unique=False)
    key = loaded.plan.tasks["task_key"].iloc[1]
    copy = loaded.sf.Task.create(
        {EXT: key, "WhoId": loaded.contacts[3], "Subject": "copy", "ActivityDate": DAY}
    )
    result = loaded.run()
    assert _kinds(result) == [("Task", "duplicated", key)]
    assert result["differences"][0]["Id"] == copy["id"]  # the loaded one is kept
    assert result["counts"]["duplicated_tasks"] == 1


def test_a_task_with_our_prefix_that_no_plan_holds_shows_as_extra(loaded) -> None:
    stray = "as1_" + "f" * 40
    created = loaded.sf.Task.create(
        {EXT: stray, "WhoId": loaded.contacts[4], "Subject": "stray", "ActivityDate": DAY}
    )
    loaded.sf.Task.create({EXT: "other_1", "Subject": "not ours", "ActivityDate": DAY})
    result = loaded.run()
    assert _kinds(result) == [("Task", "extra", stray)]
    assert result["differences"][0]["Id"] == created["id"]
    assert result["differences"][0]["cause"] == "no plan holds this key"


def test_a_task_planned_on_a_neighbouring_day_is_not_extra(loaded) -> None:
    neighbour = "as1_" + "e" * 40
    loaded.sf.Task.create({EXT: neighbour, "Subject": "tomorrow's", "ActivityDate": DAY})
    result = reconcile(
        loaded.client,
        loaded.plan.tasks,
        loaded.plan.relations,
        loaded.result.task_results,
        loaded.result.relation_results,
        lambda: {neighbour},
    )
    assert result["status"] == "ok"


def test_removed_and_unplanned_relations_are_listed_by_key(loaded) -> None:
    shared_key = loaded.plan.tasks["task_key"].iloc[0]
    task_id = loaded.task_id(shared_key)
    third = loaded.contacts[2]
    row = loaded.sf.query(
        f"SELECT Id FROM TaskRelation WHERE TaskId = '{task_id}' AND RelationId = '{third}'"
    )["records"][0]
    loaded.sf.TaskRelation.delete(row["Id"])
    loaded.sf.TaskRelation.create({"TaskId": task_id, "RelationId": loaded.contacts[5]})
    result = loaded.run()
    assert _kinds(result) == [
        ("TaskRelation", "extra", shared_key),
        ("TaskRelation", "missing", shared_key),
    ]
    by_kind = {d["kind"]: d for d in result["differences"]}
    assert by_kind["missing"]["RelationId"] == third
    assert by_kind["missing"]["cause"] == "removed in Salesforce after the load"
    assert by_kind["extra"]["RelationId"] == loaded.contacts[5]


def test_a_task_whose_date_was_edited_is_found_by_key_and_not_missing(loaded) -> None:
    key = loaded.plan.tasks["task_key"].iloc[1]
    loaded.sf.Task.update(loaded.task_id(key), {"ActivityDate": "2026-12-24"})
    result = loaded.run()
    assert result["status"] == "ok"
    assert result["api_calls"] == 3  # by key, by date, the relations


def test_bulk_query_jobs_give_the_same_answer_for_big_days(loaded) -> None:
    loaded.sf.Task.delete(loaded.task_id(loaded.plan.tasks["task_key"].iloc[1]))
    rest = loaded.run()
    bulk = loaded.run(bulk_threshold=0)
    assert bulk["bulk_jobs"] == 3  # by key, by date, relations
    assert _kinds(bulk) == _kinds(rest)


def test_the_relation_reads_grow_with_chunks_not_rows(loaded) -> None:
    # Two keys or Task Ids take more than 30 characters: 30 per query forces one each.
    result = loaded.run(rest_in_chars=30)
    assert result["status"] == "ok"
    assert result["api_calls"] == 2 + 1 + 2  # keys, the date, relations


def test_without_shared_activities_the_whoid_is_the_relation(fresh_emulator) -> None:
    fresh_emulator.set_settings(shared_activities=False)
    loaded = _load(fresh_emulator, shared=False)
    result = loaded.run()
    assert result["status"] == "ok"
    assert result["relations_checked_in"] == "WhoId"


def test_the_audit_reports_the_reconciliation_and_raises_an_alert(loaded, tmp_path: Path) -> None:
    start = datetime(2026, 11, 20, 9, tzinfo=UTC)
    write_plan(loaded.plan, lake.partition(tmp_path, lake.PLAN, ORG, start))
    write_load_result(loaded.result, lake.partition(tmp_path, lake.LOADED, ORG, start))
    now = datetime(2026, 11, 21, tzinfo=UTC)
    clean = audit.run_audit(tmp_path, ORG, DAY, client=loaded.client, now=now)
    assert clean.document["headline"]["reconciliation"] == "ok"
    assert [a["kind"] for a in clean.alerts] == ["coverage"]  # only hour 09 was synced

    loaded.sf.Task.delete(loaded.task_id(loaded.plan.tasks["task_key"].iloc[0]))
    broken = audit.run_audit(tmp_path, ORG, DAY, client=loaded.client, now=now)
    assert broken.document["headline"]["reconciliation"] == "differences"
    assert [a["kind"] for a in broken.alerts] == ["coverage", "reconciliation"]
    assert "1 missing Task." in broken.alerts[1]["message"]
    assert 'id="metric-reconciliation" class="bad">Differences' in broken.html


def _one_each(contacts: list[str], dated: list[tuple[str, str]]) -> Plan:
    """One Task per (event_id, ActivityDate), each for the next Contact, nothing shared."""
    tasks = [
        {**_task(event_id, f"w{who}", who, 1, None), "ActivityDate": activity_date}
        for (event_id, activity_date), who in zip(dated, contacts, strict=False)
    ]
    relations = [
        {"task_key": t["task_key"], "RelationId": t["WhoId"], "position": 0, "is_primary": True}
        for t in tasks
    ]
    summary = dict.fromkeys(SUMMARY_KEYS, 0)
    summary.update(events=len(tasks), tasks=len(tasks), relations=len(tasks), mode="shared")
    summary.update(mode_reason="shared activities on", rejected_by_reason={})
    return Plan(
        pd.DataFrame(tasks, columns=TASK_COLUMNS),
        pd.DataFrame(relations, columns=RELATION_COLUMNS),
        pd.DataFrame(columns=["event_id", "email", "reason", "detail"]),
        summary,
    )


def test_a_day_whose_tasks_fall_on_two_local_dates_reconciles_exactly_its_own_tasks(
    fresh_emulator, tmp_path: Path
) -> None:
    """New York is 5 hours behind UTC: the UTC day 2026-11-20 runs from 19:00 on the 19th to
    19:00 on the 20th there, so its Tasks carry two ActivityDates, which the neighbouring
    UTC days' Tasks carry too. Salesforce's list view of those dates shows all of them; the
    day's reconciliation holds exactly its own, found by key, and says why the rest are
    there."""
    sf = fresh_emulator.simple_salesforce()
    contacts = [r["Id"] for r in sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 8")["records"]]
    client = SalesforceClient(fresh_emulator.simple_salesforce, poll_wait=0.05, backoff=0.01)
    hours = {
        # UTC hour -> Tasks as (event_id, ActivityDate in New York)
        datetime(2026, 11, 19, 20, tzinfo=UTC): [("before", "2026-11-19")],  # 15:00 on the 19th
        datetime(2026, 11, 20, 3, tzinfo=UTC): [("late1", "2026-11-19"), ("late2", "2026-11-19")],
        datetime(2026, 11, 20, 15, tzinfo=UTC): [("morning", "2026-11-20")],
        datetime(2026, 11, 21, 2, tzinfo=UTC): [("after", "2026-11-20")],  # 21:00 on the 20th
    }
    for i, (start, dated) in enumerate(hours.items()):
        plan = _one_each(contacts[2 * i :], dated)
        result = load_plan(plan, client, LoadOptions(row_retry_wait=0))
        assert result.summary["tasks_failed"] == 0
        write_plan(plan, lake.partition(tmp_path, lake.PLAN, ORG, start))
        write_load_result(result, lake.partition(tmp_path, lake.LOADED, ORG, start))
    # What a sales admin sees in Salesforce for those two dates: 5 Tasks, the day planned 3.
    on_dates = sf.query_all(
        f"SELECT Id FROM Task WHERE ActivityDate IN (2026-11-19, 2026-11-20) AND {EXT} != null"
    )
    assert on_dates["totalSize"] == 5

    new_york = parse_settings({"org_id": ORG, "timezone": "America/New_York"})
    now = datetime(2026, 11, 22, tzinfo=UTC)
    result = audit.run_audit(tmp_path, ORG, DAY, client=client, settings=new_york, now=now)
    rec = result.document["reconciliation"]
    assert rec["status"] == "ok"
    assert (rec["tasks_expected"], rec["tasks_found"]) == (3, 3)
    assert rec["dates_scanned"] == ["2026-11-19", "2026-11-20"]
    assert rec["other_days_tasks"] == 2  # "before" and "after", planned by their own days
    text = " ".join(result.html.split())
    assert "Salesforce holds 3 of the 3 planned Tasks (looked up by key)" in text
    assert "2026-11-19 and 2026-11-20 also shows 2 Tasks that the neighbouring days planned" in text
    labels = result.document["hour_labels"]
    assert (labels[3]["label"], labels[15]["label"]) == (
        "Thu 19 Nov 22:00 (03:00 UTC)",
        "Fri 20 Nov 10:00 (15:00 UTC)",
    )

    # A Task of ours no plan holds, on one of those dates, is extra; on another date it is
    # no business of this day's.
    stray = sf.Task.create({EXT: "as1_" + "d" * 40, "Subject": "x", "ActivityDate": "2026-11-19"})
    sf.Task.create({EXT: "as1_" + "c" * 40, "Subject": "y", "ActivityDate": "2026-11-25"})
    again = audit.run_audit(tmp_path, ORG, DAY, client=client, settings=new_york, now=now)
    rec = again.document["reconciliation"]
    assert [(d["kind"], d["Id"]) for d in rec["differences"]] == [("extra", stray["id"])]
    assert (rec["tasks_found"], rec["other_days_tasks"]) == (3, 2)


# --------------------------------------------------------------------------- compare alone


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def test_a_task_the_load_failed_is_missing_because_of_the_load() -> None:
    planned = _frame([{"task_key": "as1_a", "ActivityDate": DAY}], ["task_key", "ActivityDate"])
    results = _frame(
        [{"task_key": "as1_a", "Id": None, "success": False, "error_code": "INVALID_FIELD"}],
        ["task_key", "Id", "success", "error_code"],
    )
    empty = SalesforceDay(
        _frame([], ["Id", "task_key", "ActivityDate", "WhoId"]),
        _frame([], ["Id", "TaskId", "RelationId"]),
    )
    relations = _frame([], ["task_key", "RelationId"])
    relation_results = _frame([], ["task_key", "RelationId", "status", "error_code"])
    out = compare(planned, relations, results, relation_results, empty, set())
    assert out[["kind", "task_key", "cause"]].values.tolist() == [
        ["missing", "as1_a", "load failed: INVALID_FIELD"]
    ]
    unloaded = compare(planned, relations, results.iloc[:0], relation_results, empty, set())
    assert unloaded["cause"].tolist() == ["not loaded: no load result for its hour"]


def test_two_relation_rows_for_the_same_person_show_as_duplicated() -> None:
    planned = _frame([{"task_key": "as1_a", "ActivityDate": DAY}], ["task_key", "ActivityDate"])
    relations = _frame(
        [{"task_key": "as1_a", "RelationId": "003A"}, {"task_key": "as1_a", "RelationId": "003B"}],
        ["task_key", "RelationId"],
    )
    salesforce = SalesforceDay(
        _frame(
            [{"Id": "00T1", "task_key": "as1_a", "ActivityDate": DAY, "WhoId": "003A"}],
            ["Id", "task_key", "ActivityDate", "WhoId"],
        ),
        _frame(
            [
                {"Id": "0RT1", "TaskId": "00T1", "RelationId": "003A"},
                {"Id": "0RT2", "TaskId": "00T1", "RelationId": "003B"},
                {"Id": "0RT3", "TaskId": "00T1", "RelationId": "003B"},
            ],
            ["Id", "TaskId", "RelationId"],
        ),
    )
    out = compare(
        planned,
        relations,
        _frame([], ["task_key", "Id", "success", "error_code"]),
        _frame([], ["task_key", "RelationId", "status", "error_code"]),
        salesforce,
        set(),
    )
    assert list(out.columns) == DIFFERENCE_COLUMNS
    assert out[["object", "kind", "task_key", "Id", "RelationId"]].values.tolist() == [
        ["TaskRelation", "duplicated", "as1_a", "0RT3", "003B"]
    ]


def test_values_are_chunked_by_the_length_of_the_soql_they_make() -> None:
    values = [f"{i:018d}" for i in range(10)]
    chunks = list(_chunks(values, 21 * 4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert [v for c in chunks for v in c] == values
