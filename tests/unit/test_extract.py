"""extract.py: an interval takes the events that *arrived* in it, malformed lines recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest
from strategies import comparable, crm_of

from activity_sync.events import read_events
from activity_sync.extract import arrival_hours, extract_interval
from activity_sync.plan import plan
from activity_sync.settings import parse_settings

H = datetime(2026, 11, 26, 13, tzinfo=UTC)


def land(root, hour: int, lines: list[str], name: str = "events.jsonl") -> None:
    folder = root / "org_id=acme" / "date=2026-11-26" / f"hour={hour:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")


def event(event_id: str, **extra) -> str:
    body = {
        "event_id": event_id,
        "org_id": "acme",
        "type": "sent",
        "occurred_at": "2026-11-26T12:59:00+00:00",  # before the hour: arrival decides
        "sender": "rep@acme.com",
        "recipients": [{"email": "a@b.com", "field": "to"}],
    }
    return json.dumps({**body, **extra})


def test_an_interval_takes_every_file_that_arrived_within_it_and_nothing_else(tmp_path):
    land(tmp_path / "landing", 12, [event("early")])
    land(tmp_path / "landing", 13, [event("e1"), event("e2")])
    land(tmp_path / "landing", 13, [event("e3")], name="late-batch.jsonl")
    land(tmp_path / "landing", 14, [event("later")])
    stats = extract_interval(tmp_path / "landing", "acme", H, H.replace(hour=14), tmp_path / "out")
    assert stats == {"files": 2, "events": 3, "rejected": 0}
    events, _ = read_events(tmp_path / "out" / "events.parquet")
    assert sorted(events["event_id"]) == ["e1", "e2", "e3"]
    assert events["recipients"].iloc[0][0]["email"] == "a@b.com"


def test_malformed_lines_are_kept_as_rejections_naming_the_file(tmp_path):
    land(tmp_path / "landing", 13, [event("e1"), "{not json", "[1, 2]"])
    stats = extract_interval(tmp_path / "landing", "acme", H, H.replace(hour=14), tmp_path / "out")
    assert stats["events"] == 1 and stats["rejected"] == 2
    rejected = pd.read_parquet(tmp_path / "out" / "rejected.parquet")
    assert set(rejected["reason"]) == {"malformed"}
    assert rejected["detail"].str.contains("hour=13/events.jsonl").all()


def test_an_hour_with_nothing_landed_still_writes_a_readable_empty_partition(tmp_path):
    stats = extract_interval(tmp_path / "landing", "acme", H, H.replace(hour=14), tmp_path / "out")
    assert stats == {"files": 0, "events": 0, "rejected": 0}
    events, _ = read_events(tmp_path / "out" / "events.parquet")
    assert events.empty and "event_id" in events.columns


def test_a_longer_window_spans_each_arrival_hour_once():
    hours = arrival_hours(H, H.replace(hour=16))
    assert [h.hour for h in hours] == [13, 14, 15]


def test_an_empty_window_is_refused():
    with pytest.raises(ValueError, match="empty interval"):
        arrival_hours(H, H)


def test_values_of_other_types_reach_the_plan_step_as_they_were_read(tmp_path):
    """The lake's events.parquet keeps what fits no text column (a number, a JSON NaN, a
    lone surrogate, a list), so the plan step judges what the reader read; such a file
    used to fail the extract outright."""
    odd = [
        event("e2", subject=5, thread_id=[1]),
        event("e3").replace('"e3"', "7"),
        event("e4").replace('"rep@acme.com"', "NaN"),
        event("e5", subject="\ud800", recipients=[{"email": 5, "field": "to"}]),
    ]
    land(tmp_path / "landing", 13, [event("e1"), *odd])
    landed = tmp_path / "landing" / "org_id=acme" / "date=2026-11-26" / "hour=13" / "events.jsonl"
    stats = extract_interval(tmp_path / "landing", "acme", H, H.replace(hour=14), tmp_path / "out")
    assert stats == {"files": 1, "events": 5, "rejected": 0}
    from_lake, _ = read_events(tmp_path / "out" / "events.parquet")
    from_landing, _ = read_events(landed)
    settings = parse_settings({"org_id": "acme"})
    crm = crm_of(contacts=[{"Id": "003A", "Email": "a@b.com", "AccountId": None}])
    assert comparable(plan(from_lake, crm, settings)) == comparable(
        plan(from_landing, crm, settings)
    )
    assert plan(from_lake, crm, settings).summary["rejected_by_reason"] == {"invalid_field": 4}


def test_a_zoned_time_column_and_json_lines_extract_together(tmp_path):
    land(tmp_path / "landing", 13, [event("e1")])
    folder = tmp_path / "landing" / "org_id=acme" / "date=2026-11-26" / "hour=13"
    frame = pd.DataFrame([json.loads(event("e2"))])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    frame.to_parquet(folder / "more.parquet")
    stats = extract_interval(tmp_path / "landing", "acme", H, H.replace(hour=14), tmp_path / "out")
    assert stats["events"] == 2
    events, _ = read_events(tmp_path / "out" / "events.parquet")
    assert events["occurred_at"].tolist() == [
        "2026-11-26T12:59:00+00:00",
        "2026-11-26T12:59:00+00:00",
    ]


def test_lines_that_are_not_utf8_are_recorded_with_their_file(tmp_path):
    folder = tmp_path / "landing" / "org_id=acme" / "date=2026-11-26" / "hour=13"
    folder.mkdir(parents=True)
    bad = event("e2", subject="x_HOLE_").encode().replace(b"_HOLE_", b"\xff")
    (folder / "events.jsonl").write_bytes(b"\n".join([event("e1").encode(), bad]))
    stats = extract_interval(tmp_path / "landing", "acme", H, H.replace(hour=14), tmp_path / "out")
    assert stats == {"files": 1, "events": 1, "rejected": 1}
    rejected = pd.read_parquet(tmp_path / "out" / "rejected.parquet")
    assert rejected[["event_id", "reason"]].values.tolist() == [["e2", "invalid_field"]]
    assert rejected["detail"].iloc[0].startswith("line 2: subject is not valid UTF-8 text in ")
