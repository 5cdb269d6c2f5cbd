"""What the closing task of a run says about the tasks that failed before it."""

from __future__ import annotations

from activity_sync.task_failures import (
    as_records,
    audit_failures,
    failed_tasks_message,
    failure_record,
)


def test_a_failure_names_the_task_the_error_type_and_its_message() -> None:
    record = failure_record("window", ValueError("no data interval"))
    assert failed_tasks_message([record]) == "task window failed: ValueError: no data interval"


def test_a_task_that_recorded_no_error_points_to_its_log() -> None:
    assert failed_tasks_message([{"task": "select_orgs", "error": None}]) == (
        "task select_orgs failed; its log says why"
    )


def test_failed_targets_is_named_even_when_it_recorded_nothing() -> None:
    assert audit_failures(None, 0, []) == [{"task": "targets", "error": None}]
    recorded = [failure_record("targets", KeyError("x"))]
    assert audit_failures(None, 0, recorded) == recorded


def test_audits_that_failed_without_a_record_are_counted() -> None:
    targets = [{"org_id": o, "day": "2026-11-20"} for o in ("a", "b", "c")]
    recorded = [failure_record("audit [a 2026-11-20]", RuntimeError("boom"))]
    assert audit_failures(targets, 1, recorded) == [
        *recorded,
        {"task": "audit (1 mapped task(s))", "error": None},
    ]
    assert audit_failures(targets, 3, []) == []


def test_an_xcom_pull_of_one_none_or_many_records_is_a_list() -> None:
    one = {"task": "t", "error": "E"}
    assert as_records(None) == []
    assert as_records(one) == [one]
    assert as_records([one, None, one]) == [one, one]
