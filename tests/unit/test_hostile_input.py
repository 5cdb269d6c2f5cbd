"""Hostile landing files end to end: nothing stops the hour, nothing is lost (issue 12).

Every line of an events file is either planned or rejected with a reason, whatever its
bytes; the good lines around a bad one are planned exactly as without it; and the command
line (``python -m activity_sync plan``) and the DAG's extract + plan steps agree. Proven
three ways: the named cases of ``hostile_corpus.py`` (each alone, and again among a
malformed line so that the file is read line by line), a byte-level fuzz test (hypothesis:
valid lines mutated into invalid UTF-8, truncations, control characters, byte order marks,
mixed line endings, huge values and wrong JSON types), and real subprocess runs.

A line, as docs/events.md defines it, ends at ``\\n``, ``\\r\\n`` or ``\\r``; a line holding
only spaces, tabs or a byte order mark is no line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hostile_corpus import CASES, CRM_FILES, KNOWN, OPEN, SETTINGS, Case, line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activity_sync import lake
from activity_sync.cli import main
from activity_sync.crm import Crm, read_crm
from activity_sync.events import read_events
from activity_sync.plan import add_rejections, read_plan
from activity_sync.plan import plan as make_plan
from activity_sync.schema import EVENT_COLUMNS, EVENT_TYPES, REASONS, RECIPIENT_TYPES, Plan
from activity_sync.settings import Settings, load_settings
from activity_sync.steps import step_extract, step_plan
from activity_sync.tenants import Org

HOUR = datetime(2024, 5, 1, 10, tzinfo=UTC)
CAPS = {"shared_activities": True, "external_id_field": "Activity_Sync_Key__c"}
BOM = b"\xef\xbb\xbf"
GOOD = [
    line(event_id="g1", recipients=[{"email": a, "field": "to"} for a in KNOWN[:3]]),
    line(OPEN, event_id="g2", actor="BOB@client.com "),
]
GOOD_IDS = {"g1", "g2"}
MALFORMED_LINE = b"{broken"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    crm = folder / "crm"
    crm.mkdir()
    for name, text in CRM_FILES.items():
        (crm / name).write_text(text, encoding="utf-8")
    (folder / "settings.json").write_text(json.dumps(SETTINGS))
    return {"crm": crm, "settings": folder / "settings.json"}


def lines_in(data: bytes) -> int:
    """The lines of a file as docs/events.md counts them (independently of the reader)."""
    return sum(
        1 for piece in re.split(rb"\r\n|\r|\n", data) if piece.removeprefix(BOM).strip(b" \t")
    )


def cli_plan(data: bytes, inputs: dict[str, Path], folder: Path) -> Plan:
    """The plan ``python -m activity_sync plan`` writes for an events file of ``data``, read
    back as any later step would (in process, for speed; see the subprocess test)."""
    folder.mkdir(parents=True, exist_ok=True)
    events, out = folder / "events.jsonl", folder / "plan"
    events.write_bytes(data)
    args = ["plan", "--events", events, "--crm", inputs["crm"], "--settings", inputs["settings"]]
    assert main([*map(str, args), "--out", str(out)]) == 0
    return read_plan(out)


def dag_plan(data: bytes, inputs: dict[str, Path], root: Path) -> Plan:
    """The plan partition the DAG's extract and plan steps write for one landed file."""
    org = Org.from_dict(
        {"org_id": "acme", "salesforce_conn_id": "salesforce_acme", "settings": SETTINGS}
    )
    landing = lake.landing_hour(root / org.landing, "acme", HOUR)
    landing.mkdir(parents=True)
    (landing / "events.jsonl").write_bytes(data)
    crm = lake.crm_folder(root, "acme")
    crm.mkdir(parents=True)
    for name, text in CRM_FILES.items():
        (crm / name).write_text(text, encoding="utf-8")
    step_extract(org, root, HOUR, HOUR.replace(hour=11))
    step_plan(org, root, HOUR, CAPS)
    return read_plan(lake.partition(root, lake.PLAN, "acme", HOUR))


def rows(plan: Plan, event_ids: set[str] | None = None) -> dict[str, Any]:
    """Tasks, relations and rejections (without the free-text detail), optionally of some
    events only, as plain sorted values."""
    tasks = plan.tasks.astype(object).where(plan.tasks.notna(), None)
    if event_ids is not None:
        tasks = tasks[tasks["event_id"].isin(event_ids)]
    keys = set(tasks["task_key"])
    relations = plan.relations[plan.relations["task_key"].isin(keys)].astype(object)
    rejected = plan.rejected.astype(object).where(plan.rejected.notna(), None)
    if event_ids is not None:
        rejected = rejected[rejected["event_id"].isin(event_ids)]
    return {
        "tasks": sorted(map(str, tasks.to_dict("records"))),
        "relations": sorted(map(str, relations.to_dict("records"))),
        "rejected": sorted(map(str, rejected[["event_id", "email", "reason"]].values.tolist())),
    }


def assert_accounted_for(plan: Plan, data: bytes) -> None:
    """Every line planned or rejected, every rejection with a known reason and a detail."""
    summary = plan.summary
    assert summary["events"] + summary["events_rejected"] == lines_in(data)
    assert set(plan.rejected["reason"]) <= set(REASONS)
    assert plan.rejected["detail"].notna().all() and (plan.rejected["detail"] != "").all()


@pytest.fixture(scope="module")
def good_alone(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Plan:
    plan = cli_plan(b"\n".join(GOOD) + b"\n", inputs, tmp_path_factory.mktemp("good"))
    assert plan.summary["events"] == 2 and plan.rejected.empty and len(plan.tasks) == 2
    return plan


# --------------------------------------------------------------------------- the corpus


def test_the_corpus_holds_at_least_a_hundred_named_cases():
    names = [case.name for case in CASES]
    assert len(names) >= 100
    assert len(set(names)) == len(names)


@pytest.fixture(scope="module")
def org_inputs(inputs: dict[str, Path]) -> tuple[Crm, Settings]:
    return read_crm(inputs["crm"]), load_settings(inputs["settings"])


def readable(frame: pd.DataFrame) -> list[str]:
    """The reader's frame as comparable text, whichever path (Arrow or Python) made it."""

    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return [plain(v) for v in value]
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        missing = value is None or value is pd.NA or (isinstance(value, float) and value != value)
        return None if missing else value

    return [
        json.dumps({k: plain(v) for k, v in row.items()}, default=repr)
        for row in frame.astype(object).to_dict("records")
    ]


def read_bytes(data: bytes, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = folder / "events.jsonl"
    path.write_bytes(data)
    return read_events(path)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_hostile_line_becomes_what_the_corpus_says_and_spares_the_good_lines(
    case: Case, org_inputs, good_alone, tmp_path
):
    """First in the file (where a ``null`` line once crashed Arrow), then the good lines.
    With a malformed line added, the whole file takes the line-by-line path, which must
    read every line exactly as the whole-file path does."""
    data = b"\n".join([case.raw, *GOOD]) + b"\n"
    events, rejected = read_bytes(data, tmp_path)
    by_line, by_line_rejected = read_bytes(data + MALFORMED_LINE + b"\n", tmp_path)
    assert readable(by_line) == readable(events)
    assert by_line_rejected["reason"].tolist() == [*rejected["reason"], "malformed"]
    crm, org_settings = org_inputs
    plan = add_rejections(make_plan(events, crm, org_settings), rejected)
    assert_accounted_for(plan, data)
    assert rows(plan, GOOD_IDS) == rows(good_alone)
    got = Counter(plan.rejected["reason"]) + Counter({"planned": plan.summary["events"] - 2})
    assert +got == Counter(case.outcome)


def test_every_corpus_case_at_once_is_planned_alike_by_the_cli_and_the_dag(
    inputs, good_alone, tmp_path
):
    """All cases in one file, lines ended by \\n, \\r\\n and \\r in turn, behind a BOM:
    the DAG's extract + plan steps (through the lake's events.parquet) plan what the CLI
    plans, and account for every line."""
    endings = [b"\n", b"\r\n", b"\r"]
    parts = [BOM]
    for i, raw in enumerate([GOOD[0], *(case.raw for case in CASES), GOOD[1]]):
        parts += [raw, endings[i % 3]]
    data = b"".join(parts)
    cli = cli_plan(data, inputs, tmp_path / "cli")
    dag = dag_plan(data, inputs, tmp_path / "lake")
    for plan in (cli, dag):
        assert_accounted_for(plan, data)
        assert rows(plan, GOOD_IDS) == rows(good_alone)
    assert rows(dag) == rows(cli)
    counts = ["events", "events_rejected", "tasks", "relations", "rejected_by_reason"]
    assert {k: dag.summary[k] for k in counts} == {k: cli.summary[k] for k in counts}


@pytest.mark.parametrize("field", ["event_id", "subject", "org_id", "type"])
def test_a_field_that_is_not_utf8_is_one_rejection_for_the_cli_and_the_dag(
    field, inputs, good_alone, tmp_path
):
    """Issue 12, item 1: a byte such as 0xE9 used to stop the CLI (exit 1) and the DAG's
    plan step for the whole hour, or, in an event_id, to write a plan that cannot be read."""
    bad = line(**{"event_id": "h9", field: "x_HOLE_"}).replace(b"_HOLE_", b"\xe9")
    data = b"\n".join([GOOD[0], bad, GOOD[1]])
    for plan in (cli_plan(data, inputs, tmp_path / "cli"), dag_plan(data, inputs, tmp_path)):
        assert rows(plan, GOOD_IDS) == rows(good_alone)
        rejected = plan.rejected.astype(object).where(plan.rejected.notna(), None)
        assert rejected[["event_id", "reason"]].values.tolist() == [
            [None if field == "event_id" else "h9", "invalid_field"]
        ]
        assert plan.rejected["detail"].iloc[0].startswith(f"line 2: {field} is not valid UTF-8")


# --------------------------------------------------------------------------- fuzzing

ADDRESSES = [
    *KNOWN,
    "ANN@Client.com ",
    "\tbob@CLIENT.COM",
    "zoë@exämple.com",
    "ZOË@XN--EXMPLE-CUA.COM",
    "nobody@nowhere.io",
    "not-an-email",
    "",
]
TIMES = ["2024-05-01T10:00:00Z", "2024-04-30T23:30:00-07:00", "2024-05-01T08:00:00.5+09:00"]
TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
BAD_BYTES = [b"\x80", b"\xc0\xaf", b"\xe9", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xff", b"\xfe"]
CONTROL = [bytes([c]) for c in range(32)] + [b"\x7f"]
BREAKS = [b"\n", b"\r\n", b"\r"]


@st.composite
def valid_events(draw: st.DrawFn, event_id: str) -> dict[str, Any]:
    """A valid event of any type, with text of any Unicode and unknown fields of any JSON."""
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    event: dict[str, Any] = {
        "event_id": event_id,
        "org_id": "acme",
        "type": event_type,
        "occurred_at": draw(st.sampled_from(TIMES)),
        "sender": draw(st.sampled_from(["rep@acme.com", " REP@acme.com", "temp@acme.com"])),
    }
    if event_type in RECIPIENT_TYPES:
        recipient = st.fixed_dictionaries(
            {"email": st.sampled_from(ADDRESSES), "field": st.sampled_from(["to", "cc", "bcc"])}
        )
        event["recipients"] = draw(st.lists(recipient, min_size=1, max_size=4))
    else:
        event["actor"] = draw(st.sampled_from(ADDRESSES[:6]))
    for name in ("subject", "body", "url", "filename", "thread_id", "message_id"):
        value = draw(st.none() | TEXT)
        if value is not None or draw(st.booleans()):
            event[name] = value
    unknown = st.dictionaries(
        TEXT.filter(lambda k: k not in EVENT_COLUMNS), JSON_VALUES, max_size=2
    )
    event.update(draw(unknown))
    return event


def encoded(draw: st.DrawFn, event: dict[str, Any]) -> bytes:
    """An event as a JSON line, written as any of several writers would."""
    separators = draw(st.sampled_from([(", ", ": "), (",", ":"), (" , ", " : ")]))
    text = json.dumps(event, ensure_ascii=draw(st.booleans()), separators=separators)
    return text.encode()


@st.composite
def hostile_lines(draw: st.DrawFn, event_id: str) -> bytes:
    """A valid line broken at the byte level, or in its JSON types, in one of many ways."""
    event = draw(valid_events(event_id))
    how = draw(
        st.sampled_from(
            [
                "bad_utf8",
                "control",
                "bom",
                "line_break",
                "truncate",
                "wrong_type",
                "huge",
                "constant",
                "repeated_key",
                "random",
                "two_objects",
            ]
        )
    )
    if how == "wrong_type":
        field = draw(st.sampled_from([*EVENT_COLUMNS]))
        event[field] = draw(JSON_VALUES | st.just([{"email": 5, "field": "to"}]))
        return encoded(draw, event)
    if how == "huge":
        size = draw(st.sampled_from([70_000, 1 << 20]))
        event[draw(st.sampled_from(["subject", "body", "event_id", "x"]))] = "é" * size
        return encoded(draw, event)
    raw = encoded(draw, event)
    at = draw(st.integers(0, len(raw)))
    if how == "truncate":
        return raw[:at]
    if how == "constant":
        field = draw(st.sampled_from(["subject", "event_id", "sender", "x"]))
        constant = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "9" * 5000]))
        return raw[:-1] + f', "{field}": {constant}}}'.encode()
    if how == "repeated_key":
        field = draw(st.sampled_from([*EVENT_COLUMNS, "x"]))
        return b'{"' + field.encode() + b'": "again", ' + raw[1:]
    if how == "random":
        return draw(st.binary(max_size=64))
    if how == "two_objects":
        return raw + draw(st.sampled_from([b"", b" ", b"\t"])) + raw
    pieces = {
        "bad_utf8": BAD_BYTES,
        "control": CONTROL,
        "bom": [BOM],
        "line_break": BREAKS,
    }[how]
    return raw[:at] + draw(st.sampled_from(pieces)) + raw[at:]


@st.composite
def hostile_files(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(a file of good and hostile lines in any order, its good lines alone)."""
    good = [encoded(draw, draw(valid_events(f"g{i}"))) for i in range(draw(st.integers(1, 4)))]
    bad = [draw(hostile_lines(f"x{i}")) for i in range(draw(st.integers(1, 4)))]
    order = draw(st.permutations(good + bad))
    parts = [BOM] if draw(st.booleans()) else []
    for raw in order:
        parts += [raw, draw(st.sampled_from(BREAKS))]
    if draw(st.booleans()):
        parts.pop()  # no line break after the last line
    return b"".join(parts), b"\n".join(good) + b"\n"


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(files=hostile_files())
def test_fuzzed_bytes_never_stop_the_hour_nor_touch_the_good_lines(inputs, files):
    data, good = files
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        mixed = cli_plan(data, inputs, tmp / "mixed")
        alone = cli_plan(good, inputs, tmp / "good")
        dag = dag_plan(data, inputs, tmp / "lake")
    good_ids = set(alone.tasks["event_id"]) | set(alone.rejected["event_id"].dropna())
    good_ids |= {f"g{i}" for i in range(4)}
    assert alone.summary["events"] == lines_in(good)  # the good lines are all good
    for plan in (mixed, dag):
        assert_accounted_for(plan, data)
        assert rows(plan, good_ids) == rows(alone)
    assert rows(dag) == rows(mixed)


# --------------------------------------------------------------------------- real processes


def test_the_command_line_in_its_own_process_plans_every_corpus_case(inputs, tmp_path):
    """Three real runs of ``python -m activity_sync plan``: the corpus behind a BOM with CR
    line ends, the same with CRLF, and a file of nothing but broken lines."""
    bodies = {
        "cr": BOM + b"\r".join([*GOOD, *(c.raw for c in CASES[:60])]),
        "crlf": b"\r\n".join([*(c.raw for c in CASES[60:]), *GOOD]) + b"\r\n",
        "all_broken": b"\n".join([b"null", b"\xff\xfe{", MALFORMED_LINE, b"[]"]),
    }
    for name, data in bodies.items():
        events, out = tmp_path / f"{name}.jsonl", tmp_path / name
        events.write_bytes(data)
        args = ["plan", "--events", events, "--crm", inputs["crm"]]
        args += ["--settings", inputs["settings"], "--out", out]
        done = subprocess.run(
            [sys.executable, "-m", "activity_sync", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("planned "), done.stdout
        plan = read_plan(out)
        assert_accounted_for(plan, data)
        if name != "all_broken":
            assert set(plan.tasks["event_id"]) >= GOOD_IDS
        else:
            assert plan.summary["events"] == 0 and plan.summary["events_rejected"] == 4
