"""The command line, run as a user runs it: ``python -m activity_sync`` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from activity_sync.plan import read_plan

CRM_FILES = {
    "Contact.csv": "Id,Email,AccountId,LastModifiedDate\n003A,ann@client.com,001A,2024-01-01\n"
    "003B,bob@client.com,001B,2024-01-01\n",
    "Lead.csv": "Id,Email,IsConverted,LastModifiedDate\n00QA,hal@prospect.io,false,2024-01-01\n",
    "Account.csv": "Id,Name\n001A,Client\n",
    "Opportunity.csv": "Id,AccountId,Name,IsClosed,CloseDate,OwnerId\n",
    "OpportunityContactRole.csv": "Id,OpportunityId,ContactId\n",
    "User.csv": "Id,Email,IsActive\n005A,rep@acme.com,true\n",
}
EVENTS = [
    {
        "event_id": "e1",
        "org_id": "acme",
        "type": "sent",
        "occurred_at": "2024-05-01T10:00:00Z",
        "sender": "rep@acme.com",
        "recipients": [
            {"email": "ann@client.com", "field": "to"},
            {"email": "bob@client.com", "field": "cc"},
            {"email": "hal@prospect.io", "field": "cc"},
        ],
        "subject": "Pricing",
    },
    {
        "event_id": "e2",
        "org_id": "acme",
        "type": "open",
        "occurred_at": "2024-05-01T10:05:00Z",
        "sender": "rep@acme.com",
        "actor": "nobody@else.io",
    },
]


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    crm = tmp_path / "crm"
    crm.mkdir()
    for name, text in CRM_FILES.items():
        (crm / name).write_text(text)
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([*map(json.dumps, EVENTS), "{broken"]) + "\n")
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"org_id": "acme", "sync_to_opportunities": False}))
    return {"events": events, "crm": crm, "settings": settings, "out": tmp_path / "plan"}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "activity_sync", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def plan_args(inputs: dict[str, Path]) -> list[str | Path]:
    return [
        "plan",
        *(x for k in ("events", "crm", "settings", "out") for x in (f"--{k}", inputs[k])),
    ]


def test_plan_writes_the_plan_folder_and_prints_one_summary_line(inputs):
    done = run(*plan_args(inputs))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("planned 2 events into 2 Tasks (1 shared, 1 individual;")
    assert done.stdout.count("\n") == 1
    written = read_plan(inputs["out"])
    assert written.summary["events_rejected"] == 1  # the broken line
    assert written.summary["rejected_by_reason"] == {"malformed": 1, "unmatched": 1}
    assert sorted(written.tasks["who_count"]) == [1, 2]


def test_salesforce_without_shared_activities_plans_one_task_per_person(inputs):
    done = run(*plan_args(inputs), "--salesforce-shared-activities", "off")
    assert done.returncode == 0, done.stderr
    assert "mode individual (Salesforce org has Shared Activities off)" in done.stdout
    assert read_plan(inputs["out"]).summary["tasks"] == 3


@pytest.mark.parametrize(
    ("break_input", "named"),
    [
        (lambda i: i["events"].unlink(), "events.jsonl does not exist"),
        (lambda i: i["settings"].write_text('{"org_id": "acme", "sync_cc": true}'), "'sync_cc'"),
        (lambda i: (i["crm"] / "Lead.csv").unlink(), "CRM object Lead"),
        (
            lambda i: (i["crm"] / "User.csv").write_text("Id,Email\n"),
            "User has no column 'IsActive'",
        ),
    ],
    ids=["missing-events", "unknown-settings-key", "missing-crm-object", "missing-crm-column"],
)
def test_unusable_input_exits_2_with_one_line_naming_it(inputs, break_input, named):
    break_input(inputs)
    done = run(*plan_args(inputs))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and named in done.stderr


def test_explain_prints_where_each_recipient_went(inputs):
    args = [f"--{k}={inputs[k]}" for k in ("events", "crm", "settings")]
    done = run("explain", "--event-id", "e1", *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "event e1: sent from rep@acme.com at 2024-05-01T10:00:00Z"
    assert any(
        line.startswith("  #2 cc    hal@prospect.io -> Lead 00QA")
        for line in done.stdout.splitlines()
    )

    unknown = run("explain", "--event-id", "e404", *args)
    assert unknown.returncode == 2
    assert "'e404'" in unknown.stderr and unknown.stderr.count("\n") == 1


def test_r14_a_meeting_line_becomes_a_salesforce_event_in_the_plan_folder(inputs):
    meeting = {
        "event_id": "m1",
        "org_id": "acme",
        "type": "meeting",
        "occurred_at": "2024-05-01T09:00:00Z",
        "sender": "rep@acme.com",
        "recipients": [
            {"email": "ann@client.com", "field": "to", "response": "accepted"},
            {"email": "bob@client.com", "field": "to", "response": "declined"},
        ],
        "subject": "Kickoff",
        "starts_at": "2024-05-01T11:00:00+02:00",
        "ends_at": "2024-05-01T12:00:00+02:00",
        "location": "Room 4",
        "is_all_day": False,
    }
    inputs["events"].write_text(json.dumps(meeting) + "\n")
    done = run(*plan_args(inputs))
    assert done.returncode == 0, done.stderr
    assert "1 Salesforce Events for meetings (individual mode would make 2 Tasks)" in done.stdout
    written = read_plan(inputs["out"])
    assert (inputs["out"] / "events.parquet").is_file()
    assert (inputs["out"] / "event_relations.parquet").is_file()
    assert written.tasks.empty
    event = written.salesforce_events.iloc[0]
    assert (event["WhoId"], event["StartDateTime"], event["DurationInMinutes"]) == (
        "003A",
        "2024-05-01T09:00:00.000Z",
        60,
    )
    assert written.summary["rejected_by_reason"] == {"declined": 1}
