"""The audit tells the truth at a glance: which hours were synced, hours in the org's time
zone, who was left out and why, and which days are not audited at all."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from audit_days import DAY, NOW, ORG, hour_summary, relation_rows, sample_day, task_row, write_hour

from activity_sync import audit, lake
from activity_sync.audit_steps import step_targets
from activity_sync.report import render_report, verdict
from activity_sync.settings import parse_settings
from activity_sync.tenants import Org


def _synced_hour(root: Path, hour: int, *, loaded: bool = True, day: str = DAY) -> None:
    """One hour with one open event and its Task, loaded unless told otherwise."""
    t = task_row(f"o{hour}", "open", f"w{hour}", "003x", 1)
    write_hour(
        root,
        hour,
        day=day,
        events=[{"event_id": f"o{hour}", "org_id": ORG, "type": "open", "sender": "a@acme.com"}],
        tasks=[t],
        relations=relation_rows(t["task_key"], ["003x"]),
        rejected=[],
        summary=hour_summary("shared", "on", True, events=1, tasks=1, relations=1),
        task_results=[
            {
                "task_key": t["task_key"],
                "Id": f"00T{hour:015d}",
                "created": True,
                "success": True,
                "error_code": None,
                "error_message": None,
                "attempts": 1,
            }
        ]
        if loaded
        else None,
    )


# --------------------------------------------------------------------------- coverage


def test_a_past_day_with_missing_hours_raises_a_coverage_alert_naming_them(tmp_path: Path) -> None:
    for hour in (9, 10, 11):
        _synced_hour(tmp_path, hour)
    later = NOW + timedelta(hours=3)  # every hour of the day is past the load grace
    result = audit.run_audit(tmp_path, ORG, DAY, now=later)
    cov = result.document["coverage"]
    assert (cov["synced"], cov["day_over"], cov["complete"]) == ([9, 10, 11], True, False)
    assert cov["missing"] == [h for h in range(24) if h not in (9, 10, 11)]
    assert cov["missing_text"] == "00:00–09:00 UTC, 12:00–24:00 UTC"
    (alert,) = [a for a in result.alerts if a["kind"] == "coverage"]
    assert alert["message"].startswith(
        f"{ORG} {DAY}: 3 of 24 hours synced; not synced: 00:00–09:00"
    )
    assert alert["details"]["missing_hours"] == cov["missing"]
    assert alert["id"] == f"{ORG}/{DAY}/coverage/hours=" + ",".join(
        f"{h:02d}" for h in cov["missing"]
    )
    h = result.document["headline"]
    assert (h["hours_loaded"], h["hours_expected"], h["hours_missing"]) == (3, 24, cov["missing"])
    level, sentence = verdict(result.document)
    assert level == "bad" and sentence.startswith("Incomplete: 21 of 24 hours not synced")


def test_a_whole_day_synced_raises_no_coverage_alert(tmp_path: Path) -> None:
    for hour in range(24):
        _synced_hour(tmp_path, hour)
    result = audit.run_audit(tmp_path, ORG, DAY, now=NOW)
    assert result.document["coverage"]["complete"] is True
    assert result.alerts == []
    assert verdict(result.document) == (
        "warn",
        "24 of 24 hours synced; not checked against Salesforce.",
    )


def test_r14_the_verdict_names_salesforce_events_when_the_day_planned_some(tmp_path: Path) -> None:
    for hour in range(24):
        _synced_hour(tmp_path, hour)
    document = audit.run_audit(tmp_path, ORG, DAY, now=NOW).document
    checked = {"status": "ok", "salesforce_events_expected": 0}
    assert verdict({**document, "reconciliation": checked}) == (
        "ok",
        "24 of 24 hours synced; Salesforce holds every planned Task.",
    )
    checked["salesforce_events_expected"] = 2
    assert verdict({**document, "reconciliation": checked})[1] == (
        "24 of 24 hours synced; Salesforce holds every planned Task and Salesforce Event."
    )


def test_a_day_still_running_lists_its_missing_hours_but_does_not_alert(tmp_path: Path) -> None:
    _synced_hour(tmp_path, 0)
    _synced_hour(tmp_path, 5, loaded=False)
    now = datetime.fromisoformat(f"{DAY}T09:30:00+00:00")
    inputs = audit.read_day(tmp_path, ORG, DAY)
    hours = audit.hour_counts(inputs, now, audit.AuditOptions())
    cov = audit.coverage(hours, DAY, "UTC", now, audit.AuditOptions())
    assert cov["expected"] == list(range(9))  # 00..08 have ended by 09:30
    assert cov["state"][9:] == ["not_over"] * 15
    assert cov["state"][7:9] == ["in_progress", "in_progress"]  # ended less than 2 h ago
    # Hour 05's plan was written less than 2 h before "now": its load may be on its way.
    assert cov["state"][5] == "in_progress"
    assert cov["missing"] == [1, 2, 3, 4, 6]
    assert audit.coverage_alert(ORG, DAY, cov) is None
    assert cov["day_over"] is False


def test_an_hour_planned_long_ago_and_never_loaded_is_missing_as_not_loaded(tmp_path: Path) -> None:
    _synced_hour(tmp_path, 3, loaded=False)
    result = audit.run_audit(tmp_path, ORG, DAY, now=datetime.now(UTC) + timedelta(days=400))
    assert result.document["coverage"]["state"][3] == "not_loaded"
    assert 3 in result.document["coverage"]["missing"]


# --------------------------------------------------------------------------- time zone


def test_hours_are_labelled_in_the_orgs_time_zone_with_utc_in_brackets() -> None:
    labels = audit.hour_labels(DAY, "America/New_York")
    assert labels[0]["label"] == "Thu 19 Nov 19:00 (00:00 UTC)"
    assert labels[14]["label"] == "Fri 20 Nov 09:00 (14:00 UTC)"
    assert {x["local_date"] for x in labels} == {"2026-11-19", "2026-11-20"}
    assert audit.hour_labels(DAY, "UTC")[14]["label"] == "14:00 UTC"
    assert audit.local_dates(DAY, "America/New_York") == ["2026-11-19", "2026-11-20"]
    assert audit.local_dates(DAY, "UTC") == [DAY]
    assert audit.local_dates(DAY, "Pacific/Kiritimati") == ["2026-11-20", "2026-11-21"]
    text = audit.describe_hours([0, 1, 2, 23], DAY, "America/New_York")
    assert text == "19:00–22:00 (00:00–03:00 UTC), 18:00–19:00 (23:00–24:00 UTC)"


def test_the_report_speaks_in_the_orgs_time_zone(tmp_path: Path) -> None:
    sample_day(tmp_path)
    settings = parse_settings({"org_id": ORG, "timezone": "America/New_York"})
    result = audit.run_audit(tmp_path, ORG, DAY, now=NOW, settings=settings)
    doc = result.document
    assert doc["timezone"] == "America/New_York"
    assert doc["day_window"].startswith("Thu 19 Nov 19:00 – Fri 20 Nov 19:00 America/New_York")
    fallback = next(a for a in result.alerts if a["kind"] == "fallback")
    assert "Fri 20 Nov 05:00 (10:00 UTC) fell back to individual mode" in fallback["message"]
    assert "Fri 20 Nov 04:00 (09:00 UTC)" in result.html


# --------------------------------------------------------------------------- drill-downs


def _rejections(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["event_id", "email", "reason"]).assign(hour=9)


def test_the_top_unmatched_addresses_and_domains_are_the_people_to_add() -> None:
    rejected = _rejections(
        [
            ("e1", "Pat@NewCo.com ", "unmatched"),
            ("e2", "pat@newco.com", "unmatched"),
            ("e3", "lee@newco.com", "unmatched"),
            ("e4", "kim@other.org", "unmatched"),
            ("e5", "x@competitor.com", "excluded"),
            ("e6", None, "malformed"),
        ]
    )
    found = audit.unmatched(rejected, limit=2)
    assert (found["rejections"], found["distinct_addresses"], found["distinct_domains"]) == (
        4,
        3,
        2,
    )
    assert found["addresses"] == [
        {"email": "pat@newco.com", "rejections": 2, "addresses": 1},
        {"email": "kim@other.org", "rejections": 1, "addresses": 1},
    ]
    assert found["domains"][0] == {"domain": "newco.com", "rejections": 3, "addresses": 2}


def test_each_exclusion_that_fired_is_traced_to_its_setting() -> None:
    settings = parse_settings(
        {
            "org_id": ORG,
            "exclusions": ["ceo@acme.com", "competitor.com", "eu.competitor.com"],
            "exclude_system_addresses": True,
        }
    )
    rejected = _rejections(
        [
            ("e1", "x@competitor.com", "excluded"),
            ("e2", "y@sales.competitor.com", "excluded"),
            ("e3", "z@eu.competitor.com", "excluded"),
            ("e4", "CEO@acme.com", "excluded"),
            ("e5", "noreply+tag@vendor.io", "excluded"),
            ("e6", "gone@removed.com", "excluded"),
            ("e7", "x@competitor.com", "excluded"),
        ]
    )
    fired = {f["rule"]: f for f in audit.exclusions_fired(rejected, settings)}
    assert fired["competitor.com"]["rejections"] == 3  # x twice, and the subdomain sales.
    assert fired["competitor.com"]["addresses"] == 2
    assert fired["eu.competitor.com"]["examples"] == ["z@eu.competitor.com"]
    assert fired["ceo@acme.com"]["rejections"] == 1
    assert fired["automated mailboxes (exclude_system_addresses)"]["rejections"] == 1
    assert fired["(no current setting: the settings changed since)"]["examples"] == [
        "gone@removed.com"
    ]
    assert list(fired)[0] == "competitor.com"  # the most frequent first


def test_the_report_shows_the_drill_downs_and_never_a_subject_or_body(tmp_path: Path) -> None:
    sample_day(tmp_path)
    # The lake holds bodies and subjects; the audit reads neither.
    plan = lake.partition(tmp_path, lake.PLAN, ORG, datetime.fromisoformat(f"{DAY}T09:00+00:00"))
    tasks = pd.read_parquet(plan / lake.PLAN_TASKS)
    tasks["Description"] = "SECRET BODY TEXT"
    tasks["Subject"] = "Email: SECRET SUBJECT"
    tasks.to_parquet(plan / lake.PLAN_TASKS, index=False)
    settings = parse_settings({"org_id": ORG, "exclusions": ["competitor.com", "ceo@acme.com"]})
    result = audit.run_audit(tmp_path, ORG, DAY, now=NOW, settings=settings)
    html = result.html
    assert "SECRET" not in html and "SECRET" not in str(result.document)
    assert "<td>who@x.com</td>" in html  # the unmatched actor of e4
    assert "<code>competitor.com</code>" in html and "<code>ceo@acme.com</code>" in html
    assert "89.6% fewer Tasks than one per person" in html
    assert result.document["by_type"]["sent"] == {
        "events": 3,
        "tasks": 6,
        "salesforce_events": 0,
        "individual_mode_salesforce_events": 0,
    }
    assert '<td>sent</td><td class="n">3</td>' in html


# --------------------------------------------------------------------------- which days


def test_a_day_before_the_orgs_first_plan_is_not_audited_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sample_day(tmp_path)
    orgs = [Org.from_dict({"org_id": ORG, "salesforce_conn_id": "c"})]
    logical = datetime(2026, 11, 21, 2, 30, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger="activity_sync.steps"):
        assert step_targets(orgs, {}, [], logical, None, tmp_path) == [{"org_id": ORG, "day": DAY}]
        assert step_targets(orgs, {"day": "2026-11-19"}, [], None, None, tmp_path) == []
    assert (
        f"not auditing {ORG} 2026-11-19: no hour of {ORG} was planned on or before that day"
        in caplog.text
    )
    assert not lake.audit_folder(tmp_path, ORG, "2026-11-19").exists()


def test_a_day_without_a_plan_after_the_orgs_first_is_audited_as_zero_of_24_hours(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A day the scheduler missed entirely must not be invisible (issue 15, item 1)."""
    sample_day(tmp_path)
    orgs = [Org.from_dict({"org_id": ORG, "salesforce_conn_id": "c"})]
    with caplog.at_level(logging.WARNING, logger="activity_sync.steps"):
        targets = step_targets(orgs, {"day": "2026-11-21"}, [], None, None, tmp_path)
    assert targets == [{"org_id": ORG, "day": "2026-11-21"}]
    assert f"auditing {ORG} 2026-11-21 although no hour of it was planned" in caplog.text
    result = audit.run_audit(tmp_path, ORG, "2026-11-21", now=datetime(2026, 11, 23, tzinfo=UTC))
    (alert,) = [a for a in result.alerts if a["kind"] == "coverage"]
    assert alert["message"].startswith(
        f"{ORG} 2026-11-21: 0 of 24 hours synced; not synced: 00:00–24:00 UTC."
    )
    assert alert["details"]["synced_hours"] == 0 and alert["details"]["expected_hours"] == 24


def test_the_report_renders_from_the_stored_document_alone(tmp_path: Path) -> None:
    sample_day(tmp_path)
    result = audit.run_audit(tmp_path, ORG, DAY, now=NOW)
    stored = audit.read_audit(tmp_path, ORG, DAY)
    assert render_report(stored) == result.html
