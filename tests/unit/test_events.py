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
    # Every recipient reads back with the optional meeting response, null when absent.
    assert first["recipients"] == [{**r, "response": None} for r in SENT["recipients"]]
    assert (first["actor"], first["url"], first["starts_at"], first["is_all_day"]) == (None,) * 4
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
    # A file written before meetings had responses reads as if each response were null.
    assert first["recipients"] == [{**r, "response": None} for r in SENT["recipients"]]
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


# --------------------------------------------------------------------------- hostile bytes
# Issue 12: one bad line must never cost the others (items 1, 3 and 4), whichever way the
# file is read; test_hostile_input.py holds the named corpus and the fuzz test.


def raw_lines(path, *lines: bytes, end: bytes = b"\n") -> None:
    path.write_bytes(end.join(lines) + end)


def line_of(event: dict, **changes) -> bytes:
    return json.dumps(event | changes, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "field", ["event_id", "org_id", "type", "sender", "subject", "body", "thread_id"]
)
def test_invalid_utf8_in_a_field_rejects_that_line_alone_naming_the_field(tmp_path, field):
    path = tmp_path / "events.jsonl"
    changes = {"event_id": "e3", field: "x\u2603"}
    broken = line_of(SENT, **changes).replace("\u2603".encode(), b"\xe9")
    raw_lines(path, line_of(SENT), broken, line_of(CLICK))
    events, rejected = read_events(path)
    assert events["event_id"].tolist() == ["e1", "e2"]
    assert rejected.to_dict("records") == [
        {
            "event_id": None if field == "event_id" else "e3",
            "email": None,
            "reason": "invalid_field",
            "detail": f"line 2: {field} is not valid UTF-8 text",
        }
    ]


def test_invalid_utf8_in_a_recipient_address_rejects_that_line_alone(tmp_path):
    path = tmp_path / "events.jsonl"
    broken = line_of(SENT, event_id="e3").replace(b"ann@", b"\xe9nn@")
    raw_lines(path, broken, line_of(SENT), line_of(CLICK))
    events, rejected = read_events(path)
    assert events["event_id"].tolist() == ["e1", "e2"]
    assert rejected[["event_id", "reason"]].values.tolist() == [["e3", "invalid_field"]]
    assert rejected["detail"].tolist() == ["line 1: recipients is not valid UTF-8 text"]


def test_invalid_utf8_in_a_field_the_product_ignores_is_ignored_with_it(tmp_path):
    path = tmp_path / "events.jsonl"
    raw_lines(path, line_of(SENT)[:-1] + b', "note": "caf\xe9"}', line_of(CLICK))
    events, rejected = read_events(path)
    assert events["event_id"].tolist() == ["e1", "e2"] and rejected.empty


@pytest.mark.parametrize("end", [b"\r", b"\r\n", b"\n"], ids=["cr", "crlf", "lf"])
def test_every_line_ending_reads_every_line_even_beside_a_malformed_one(tmp_path, end):
    """JSON Lines ends a line with \\n; \\r\\n and a lone \\r (old Mac tools) are line
    ends too, for the whole-file reader and the line-by-line one alike."""
    path = tmp_path / "events.jsonl"
    raw_lines(path, line_of(SENT), b"{broken", line_of(CLICK), end=end)
    events, rejected = read_events(path)
    assert events["event_id"].tolist() == ["e1", "e2"]
    assert rejected["detail"].tolist() == [
        "line 2 is not JSON (Expecting property name enclosed in double quotes at column 2)"
    ]


def test_a_byte_order_mark_never_costs_the_first_event(tmp_path):
    path = tmp_path / "events.jsonl"
    for tail in ([], [b"{broken"]):
        raw_lines(path, b"\xef\xbb\xbf" + line_of(SENT), line_of(CLICK), *tail)
        events, rejected = read_events(path)
        assert events["event_id"].tolist() == ["e1", "e2"]
        assert len(rejected) == len(tail)


def test_files_joined_with_their_byte_order_marks_lose_no_line(tmp_path):
    path = tmp_path / "events.jsonl"
    raw_lines(path, b"\xef\xbb\xbf" + line_of(SENT), b"\xef\xbb\xbf" + line_of(CLICK))
    events, rejected = read_events(path)
    assert events["event_id"].tolist() == ["e1", "e2"] and rejected.empty


@pytest.mark.parametrize("first", [b"null", b"  null", b"[]", b"42"])
def test_a_file_that_starts_with_no_object_is_read_not_crashed(tmp_path, first):
    """pyarrow's JSON reader crashes the process (SIGSEGV) on a file whose first line is
    null; the reader must never hand it one."""
    path = tmp_path / "events.jsonl"
    raw_lines(path, first, line_of(SENT))
    events, rejected = read_events(path)
    assert events["event_id"].tolist() == ["e1"]
    assert rejected["reason"].tolist() == ["malformed"]


@pytest.mark.parametrize(
    "line",
    [
        line_of(SENT) + line_of(CLICK),  # Arrow reads two events here
        line_of(SENT)[:-1] + b', "subject": "twice"}',  # and refuses this one
    ],
    ids=["two_objects_on_one_line", "a_field_given_twice"],
)
def test_a_line_is_judged_alone_whatever_its_neighbours(tmp_path, line):
    path = tmp_path / "events.jsonl"
    for tail in ([], [b"{broken"]):
        raw_lines(path, line, *tail)
        events, rejected = read_events(path)
        assert events.empty
        assert rejected["reason"].tolist() == ["malformed"] * (1 + len(tail))


def test_json_constants_are_kept_as_values_of_a_wrong_type_not_as_null(tmp_path):
    path = tmp_path / "events.jsonl"
    raw_lines(path, line_of(SENT).replace(b'"Pricing"', b"NaN"))
    events, _ = read_events(path)
    subject = events["subject"].iloc[0]
    assert not pd.isna(subject) and not isinstance(subject, str) and str(subject) == "NaN"


def test_parquet_text_that_is_not_utf8_rejects_that_row_alone(tmp_path):
    """Parquet writers need not check UTF-8; Arrow reads such a file but cannot hand it on."""
    path = tmp_path / "events.parquet"
    subjects = pa.array([b"fine", b"caf\xe9"], pa.binary()).view(pa.string())
    table = pa.table({"event_id": ["e1", "e2"], "org_id": ["acme", "acme"], "subject": subjects})
    pq.write_table(table, path)
    events, rejected = read_events(path)
    assert events["event_id"].tolist() == ["e1"]
    assert rejected[["event_id", "reason", "detail"]].values.tolist() == [
        ["e2", "invalid_field", "row 2: subject is not valid UTF-8 text"]
    ]
