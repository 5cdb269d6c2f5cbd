"""The events reader: JSON Lines and Parquet in, the contract columns out, bad lines reported."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activity_sync.errors import ActivitySyncError
from activity_sync.events import EVENT_COLUMNS, EventsError, read_events
from activity_sync.schema import REJECTED_COLUMNS

SENT = {
    "event_id": "e1",
    "org_id": "acme",
    "type": "sent",
    "occurred_at": "2024-05-01T10:00:00Z",
    "sender": "rep@acme.com",
    "recipients": [
        {"email": "ann@client.com", "field": "to"},
        {"email": "bob@client.com", "field": "cc"},
    ],
    "subject": "Pricing",
}
CLICK = {
    "event_id": "e2",
    "org_id": "acme",
    "type": "click",
    "occurred_at": "2024-05-01T10:05:00+02:00",
    "sender": "rep@acme.com",
    "actor": "ann@client.com",
    "url": "https://acme.com/pricing",
}


def write_lines(path, *lines: str) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain values: recipients as read back, None for a missing scalar."""
    return [
        {k: None if isinstance(v, float) and pd.isna(v) else v for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def test_jsonl_gives_every_contract_column_with_absent_fields_null(tmp_path):
    path = tmp_path / "events.jsonl"
    write_lines(path, json.dumps(SENT), json.dumps(CLICK))
    events, rejected = read_events(path)
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert rejected.empty and list(rejected.columns) == REJECTED_COLUMNS
    first, second = records(events)
    assert first["recipients"] == SENT["recipients"]
    assert (first["actor"], first["url"]) == (None, None)
    assert (second["actor"], second["recipients"]) == ("ann@client.com", None)


def test_recipients_stay_an_arrow_list_column(tmp_path):
    path = tmp_path / "events.jsonl"
    write_lines(path, json.dumps(SENT))
    events, _ = read_events(path)
    assert isinstance(events["recipients"].dtype, pd.ArrowDtype)


def test_malformed_lines_become_rejected_rows_naming_the_line(tmp_path):
    path = tmp_path / "events.jsonl"
    write_lines(path, json.dumps(SENT), "not json", "", "[1, 2]", json.dumps(CLICK))
    events, rejected = read_events(path)
    assert events["event_id"].tolist() == ["e1", "e2"]
    assert rejected["reason"].tolist() == ["malformed", "malformed"]
    assert rejected["event_id"].isna().all() and rejected["email"].isna().all()
    assert rejected["detail"].str.startswith("line 2 ").iloc[0]
    assert rejected["detail"].iloc[1] == "line 4 is a JSON list, not an object"


def test_a_line_whose_event_id_escapes_a_lone_surrogate_is_malformed(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"event_id": "ok", "subject": "\\udc00"}\n{"event_id": "\\ud800"}\n', encoding="utf-8"
    )
    events, rejected = read_events(path)
    assert events["event_id"].tolist() == ["ok"]  # a bad subject is the planner's to judge
    assert rejected[["reason", "detail"]].to_dict("records") == [
        {
            "reason": "malformed",
            "detail": "line 2 has an event_id that is not text (a lone surrogate)",
        }
    ]


def test_a_value_of_another_json_type_is_kept_for_the_planner_to_judge(tmp_path):
    path = tmp_path / "events.jsonl"
    odd = CLICK | {"event_id": 7, "recipients": "ann@client.com"}
    write_lines(path, json.dumps(SENT), json.dumps(odd))
    events, rejected = read_events(path)
    assert rejected.empty
    assert events["event_id"].tolist() == ["e1", 7]
    assert records(events)[1]["recipients"] == "ann@client.com"


def test_an_empty_file_has_no_events(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("")
    events, rejected = read_events(path)
    assert events.empty and rejected.empty
    assert list(events.columns) == list(EVENT_COLUMNS)


def test_parquet_round_trips_and_gains_missing_columns(tmp_path):
    path = tmp_path / "events.parquet"
    table = pa.Table.from_pandas(pd.DataFrame([SENT, CLICK])).drop_columns(["url"])
    pq.write_table(table, path)
    events, rejected = read_events(path)
    assert rejected.empty
    assert list(events.columns) == list(EVENT_COLUMNS)
    first, second = records(events)
    assert first["recipients"] == SENT["recipients"]
    assert second["actor"] == "ann@client.com"
    assert second["url"] is None


def test_the_same_events_from_jsonl_and_parquet_read_alike(tmp_path):
    jsonl, parquet = tmp_path / "events.jsonl", tmp_path / "events.parquet"
    write_lines(jsonl, json.dumps(SENT), json.dumps(CLICK))
    pq.write_table(pa.Table.from_pandas(pd.DataFrame([SENT, CLICK])), parquet)
    assert records(read_events(jsonl)[0]) == records(read_events(parquet)[0])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "does not exist"),
        ("events.csv", b"event_id\ne1\n", "neither JSON Lines"),
        ("events.parquet", b"PAR1 but not really", "not readable Parquet"),
        ("events.jsonl", b"\xff\xfe not utf-8\n", "not UTF-8"),
    ],
)
def test_an_unusable_file_is_an_error_naming_it(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EventsError, match=message) as error:
        read_events(path)
    assert name in str(error.value)
    assert isinstance(error.value, ActivitySyncError)
