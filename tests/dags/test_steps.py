"""steps.py: the run's interval and orgs, an hour's steps on a lake that is not local disk,
and the Asset event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.io import attach
from fsspec.implementations.memory import MemoryFileSystem

from activity_sync import lake
from activity_sync.errors import ActivitySyncError
from activity_sync.mirror import read_mirror
from activity_sync.salesforce import SalesforceClient
from activity_sync.shards import make_shards
from activity_sync.steps import (
    IntervalError,
    UnknownOrgError,
    resolve_interval,
    select_orgs,
    step_detect,
    step_extract,
    step_load,
    step_plan,
    step_publish,
    step_refresh_crm,
    step_summary,
)
from activity_sync.tenants import Org
from demo_data.generate import generate_day, write_landing

H13 = datetime(2026, 11, 27, 13, tzinfo=UTC)
H14 = datetime(2026, 11, 27, 14, tzinfo=UTC)


def test_the_interval_is_the_timetables_data_interval():
    assert resolve_interval(H13, H14, {}) == (H13, H14)


def test_an_interval_given_in_another_offset_is_the_same_utc_hour():
    """The lake's hour partitions are UTC: 15:00+02:00 is the hour=13 partition, not hour=15."""
    start, end = resolve_interval(
        datetime.fromisoformat("2026-11-26T15:00:00+02:00"),
        datetime.fromisoformat("2026-11-26T16:00:00+02:00"),
        {},
    )
    assert (start.hour, end.hour, start.utcoffset()) == (13, 14, timedelta(0))


def test_a_manual_run_without_logical_date_fails_with_a_message_saying_what_to_do():
    with pytest.raises(IntervalError, match="trigger it with a logical date"):
        resolve_interval(None, None, {})


def test_a_zero_width_interval_is_refused_naming_the_timetable_it_needs():
    with pytest.raises(IntervalError, match="CronDataIntervalTimetable"):
        resolve_interval(H13, H13, {})


def test_an_hour_runs_on_an_object_store_lake_end_to_end(fresh_emulator, tmp_path):
    """The lake need not be local disk: the same steps on an fsspec store (here in memory,
    for users s3:// or gs://) extract, plan and load, and write every partition there."""
    attach("memory", fs=MemoryFileSystem())
    root = ObjectStoragePath(f"memory://lake-{uuid4().hex}")
    org = Org.from_dict({"org_id": "acme", "salesforce_conn_id": "unused"})
    client = SalesforceClient(fresh_emulator.simple_salesforce, poll_wait=0.02)
    start = datetime(2026, 11, 26, 14, tzinfo=UTC)

    step_refresh_crm(org, client, root)
    events = generate_day(
        read_mirror(lake.crm_folder(root, "acme")), org_id="acme", day=start.date(), sends=60
    )
    for path in write_landing(events, tmp_path / "landing", "acme"):
        target = root / "landing" / path.relative_to(tmp_path / "landing").as_posix()
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as fh:
            fh.write(path.read_bytes())

    extracted = step_extract(org, root, start, start.replace(hour=15))
    planned = step_plan(org, root, start, step_detect(org, client))
    loaded = step_load(org, client, root, start)

    assert extracted["events"] > 0
    assert planned["tasks"] > 0
    assert loaded["tasks_created"] == planned["tasks"]
    for area, name in [
        (lake.EVENTS, lake.EVENTS_FILE),
        (lake.PLAN, lake.PLAN_TASKS),
        (lake.LOADED, lake.DEAD_LETTER),
    ]:
        assert (lake.partition(root, area, "acme", start) / name).exists(), area


def _orgs(*org_ids: str) -> list[Org]:
    return [Org.from_dict({"org_id": o, "salesforce_conn_id": f"salesforce_{o}"}) for o in org_ids]


def test_without_an_orgs_param_a_run_covers_every_configured_org_in_config_order():
    assert [o.org_id for o in select_orgs(_orgs("b", "a", "c"), [])] == ["b", "a", "c"]
    assert [o.org_id for o in select_orgs(_orgs("b", "a"), None)] == ["b", "a"]


def test_the_orgs_param_limits_the_run_to_those_orgs():
    assert [o.org_id for o in select_orgs(_orgs("b", "a", "c"), ["c", "b"])] == ["b", "c"]


def test_an_unknown_org_in_the_params_is_refused_naming_it():
    with pytest.raises(UnknownOrgError, match=r"unknown org_id\(s\) in params.orgs: \['x'\]"):
        select_orgs(_orgs("a"), ["a", "x"])


def test_the_steps_own_errors_are_activity_sync_errors():
    assert issubclass(UnknownOrgError, ActivitySyncError)
    assert issubclass(IntervalError, ActivitySyncError)


def _outcome(status: str, tasks: int = 0, error: dict | None = None) -> dict:
    return {"status": status, "steps": {"plan": {"tasks": tasks}}, "error": error}


def test_the_asset_event_names_the_orgs_that_loaded_and_their_planned_tasks():
    window = {"start": "2026-11-27T13:00:00+00:00", "end": "2026-11-27T14:00:00+00:00"}
    outcomes = {
        "b": _outcome("loaded", 3),
        "c": _outcome("failed", error={"step": "load", "message": "boom"}),
        "d": None,  # its shard died before reaching it
        "e": _outcome("waiting_for_budget", 9),
        "a": _outcome("loaded", 4),
    }
    assert step_publish(outcomes, window) == {**window, "orgs": ["a", "b"], "tasks_planned": 7}
    assert step_publish({"c": outcomes["c"], "d": None}, window) is None


def test_the_run_summary_counts_orgs_by_outcome_and_names_each_failed_org_its_step_and_task():
    shards = make_shards(_orgs("a", "b", "c", "d", "e"), 3)
    outcomes = {
        "a": _outcome("loaded"),
        "b": _outcome("failed", error={"step": "detect", "message": "no field"}),
        "c": None,
        "d": _outcome("running"),
        "e": _outcome("planned"),
    }
    summary, failure = step_summary(shards, outcomes)
    assert summary["orgs"] == 5 and summary["loaded"] == 1 and summary["planned"] == 1
    assert failure == (
        "3 of 5 org(s) failed: b (detect: no field (see task sync [a … c (3 orgs)])); "
        "c (no outcome recorded: task sync [a … c (3 orgs)] failed before reaching it; its "
        "log says why); d (did not finish: task sync [d … e (2 orgs)] died while syncing it; "
        "its log says why)"
    )
    assert step_summary(shards[1:], {"d": _outcome("loaded"), "e": _outcome("loaded")}) == (
        {"orgs": 2, "loaded": 2, "failed": {}},
        None,
    )
