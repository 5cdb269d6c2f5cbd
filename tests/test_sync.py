"""sync.py: the run's interval, and an hour's steps on a lake that is not local disk."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.io import attach
from fsspec.implementations.memory import MemoryFileSystem

from activity_sync import lake
from activity_sync.crm import read_crm
from activity_sync.generate import generate_day, write_landing
from activity_sync.salesforce import SalesforceClient
from activity_sync.sync import (
    IntervalError,
    resolve_interval,
    step_detect,
    step_extract,
    step_load,
    step_plan,
    step_refresh_crm,
)
from activity_sync.tenants import Org

H13 = datetime(2026, 11, 27, 13, tzinfo=UTC)
H14 = datetime(2026, 11, 27, 14, tzinfo=UTC)


def test_the_interval_is_the_timetables_data_interval():
    assert resolve_interval(H13, H14, {}) == (H13, H14)


def test_explicit_params_win_over_the_data_interval():
    start, end = resolve_interval(
        H13,
        H14,
        {"interval_start": "2026-11-26T05:00:00+00:00", "interval_end": "2026-11-26T07:00:00Z"},
    )
    assert (start.hour, end.hour, start.day) == (5, 7, 26)


def test_a_manual_run_without_logical_date_fails_with_a_message_saying_what_to_do():
    with pytest.raises(IntervalError, match="interval_start and interval_end"):
        resolve_interval(None, None, {})


def test_a_zero_width_interval_is_refused_naming_the_timetable_it_needs():
    with pytest.raises(IntervalError, match="CronDataIntervalTimetable"):
        resolve_interval(H13, H13, {})


def test_interval_params_without_time_zone_are_refused():
    with pytest.raises(IntervalError, match="time zone"):
        resolve_interval(
            None, None, {"interval_start": "2026-11-26T05:00", "interval_end": "2026-11-26T06:00"}
        )


def test_an_hour_runs_on_an_object_store_lake_end_to_end(fresh_emulator, tmp_path):
    """The lake need not be local disk: the same steps on an fsspec store (here in memory,
    for users s3:// or gs://) extract, plan and load, and write every partition there."""
    attach("memory", fs=MemoryFileSystem())
    root = ObjectStoragePath(f"memory://lake-{uuid4().hex}")
    org = Org.from_dict({"org_id": "acme", "salesforce_conn_id": "unused"})
    client = SalesforceClient(fresh_emulator.simple_salesforce, poll_wait=0.02)
    start = datetime(2026, 11, 26, 14, tzinfo=UTC)

    step_refresh_crm(org, client, root)
    with lake.local_copy(lake.crm_folder(root, "acme")) as crm_dir:
        events = generate_day(read_crm(crm_dir), org_id="acme", day=start.date(), sends=60)
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
        ("events", "events.parquet"),
        ("plan", "tasks.parquet"),
        ("loaded", "dead_letter.parquet"),
    ]:
        assert (lake.partition(root, area, "acme", start) / name).exists(), area
