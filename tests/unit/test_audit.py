"""The audit package on hand-written lake partitions: exact counts, percentages, alerts, outputs.

The partitions are written here, column for column as the planner and loader write them,
so these tests do not depend on either (``tests/support/audit_days.py``).
"""

from __future__ import annotations

import json
import logging
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from audit_days import (
    DAY,
    NOW,
    ORG,
    event_row,
    hour_summary,
    meeting_hour,
    relation_rows,
    sample_day,
    task_row,
    write_hour,
)

from activity_sync import audit, lake
from activity_sync.audit import AuditOptions, day_over_day_alert, percent_change
from activity_sync.errors import ActivitySyncError


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    sample_day(tmp_path)
    return tmp_path


def _row(frame: pd.DataFrame, sender: str) -> dict[str, Any]:
    return frame.set_index("sender").loc[sender].to_dict()


# --------------------------------------------------------------------------- counts


def test_sender_counts_are_exact_on_a_known_day(lake_root: Path) -> None:
    senders = audit.sender_counts(audit.read_day(lake_root, ORG, DAY))
    assert list(senders.columns) == audit.SENDER_COLUMNS
    assert list(senders["sender"]) == ["alice@acme.com", "bob@acme.com"]
    alice = _row(senders, "alice@acme.com")
    assert {k: alice[k] for k in ("events", "events_sent", "events_open", "events_reply")} == {
        "events": 3,
        "events_sent": 2,
        "events_open": 1,
        "events_reply": 0,
    }
    assert (alice["tasks"], alice["tasks_loaded"], alice["relations"]) == (5, 4, 63)
    assert alice["individual_mode_tasks"] == 50 + 10 + 1 + 1 + 1
    assert alice["change_pct"] == pytest.approx((5 - 63) / 63 * 100)
    assert (alice["rejected"], alice["rejected_excluded"], alice["rejected_invalid_email"]) == (
        3,
        2,
        1,
    )
    assert alice["dead_lettered"] == 1
    bob = _row(senders, "bob@acme.com")
    assert (bob["events"], bob["events_sent"], bob["events_reply"]) == (2, 1, 1)
    assert (bob["tasks"], bob["tasks_loaded"], bob["relations"]) == (2, 2, 6)
    assert bob["individual_mode_tasks"] == 6
    assert bob["change_pct"] == pytest.approx(-200 / 3)
    assert (bob["rejected_bcc_not_synced"], bob["rejected_unmatched"]) == (1, 1)
    assert bob["dead_lettered"] == 0


def test_r12_hours_give_the_mode_in_force_and_flag_the_fallback_hour(lake_root: Path) -> None:
    hours = audit.hour_counts(audit.read_day(lake_root, ORG, DAY), NOW, AuditOptions())
    assert list(hours["hour"]) == [9, 10]
    assert list(hours["mode"]) == ["shared", "individual"]
    assert list(hours["fallback"]) == [False, True]
    assert list(hours["mode_reason"])[1] == "Salesforce org has Shared Activities off"
    assert list(hours["tasks"]) == [5, 2]
    assert list(hours["individual_mode_tasks"]) == [65, 2]
    assert hours["change_pct"].iloc[0] == pytest.approx((5 - 65) / 65 * 100)
    assert hours["change_pct"].iloc[1] == 0.0
    assert list(hours["load_state"]) == ["loaded", "loaded"]
    assert list(hours["tasks_loaded"]) == [5, 1]
    assert list(hours["dead_lettered"]) == [0, 1]


def test_r12_individual_mode_by_the_tenants_own_setting_is_not_a_fallback(tmp_path: Path) -> None:
    """Without a recorded ``fallback`` flag (older plans) it is judged from the two flags."""
    for hour, setting_on in ((1, False), (2, True)):
        summary = hour_summary("individual", "off", False, events=0, tasks=0, relations=0)
        del summary["fallback"]
        summary["setting_shared_activities"] = setting_on
        write_hour(tmp_path, hour, events=[], tasks=[], relations=[], rejected=[], summary=summary)
    hours = audit.hour_counts(audit.read_day(tmp_path, ORG, DAY), NOW, AuditOptions())
    assert hours.set_index("hour")["fallback"].to_dict() == {1: False, 2: True}


def test_r13_headline_uses_the_planners_exact_individual_mode_figure(lake_root: Path) -> None:
    result = audit.run_audit(lake_root, ORG, DAY, now=NOW)
    h = result.document["headline"]
    assert h["events"] == 5
    assert h["events_received"] == 5
    assert h["events_redelivered"] == 0
    assert h["tasks"] == 7
    assert h["tasks_loaded"] == 6
    assert h["individual_mode_tasks"] == 67
    assert h["change_pct"] == round((7 - 67) / 67 * 100, 1) == -89.6
    assert h["relations"] == 69
    assert h["rejected_recipients"] == 5
    assert h["rejected_by_reason"] == {
        "invalid_email": 1,
        "excluded": 2,
        "bcc_not_synced": 1,
        "unmatched": 1,
    }
    assert h["dead_lettered"] == 1
    assert h["fallback_hours"] == [10]
    assert h["reconciliation"] == "skipped"
    # 61 + 6 + 2 per sender, against the planner's 65 + 2: the estimate is labelled.
    assert result.senders["individual_mode_tasks"].sum() == 69
    assert result.senders["individual_mode_estimated"].all()


def test_an_event_delivered_again_in_a_later_hour_is_counted_as_redelivered(
    tmp_path: Path,
) -> None:
    t = task_row("e1", "open", "w1", "003x", 1)
    for hour in (3, 7):
        write_hour(
            tmp_path,
            hour,
            events=[event_row("e1", "open", "a@acme.com")],
            tasks=[t],
            relations=relation_rows(t["task_key"], ["003x"]),
            rejected=[],
            summary=hour_summary("shared", "on", True, events=1, tasks=1, relations=1),
        )
    h = audit.run_audit(tmp_path, ORG, DAY, now=NOW).document["headline"]
    assert (h["events"], h["tasks"], h["events_redelivered"]) == (2, 2, 1)


def test_r13_percent_change_is_negative_for_fewer_records_and_undefined_without_a_baseline() -> (
    None
):
    assert percent_change(2, 60) == pytest.approx(-96.6666, rel=1e-4)
    assert percent_change(3, 3) == 0.0
    assert percent_change([5, 1], [0, 2]) == pytest.approx([float("nan"), -50.0], nan_ok=True)


def test_a_sender_missing_from_the_events_is_counted_as_unknown(tmp_path: Path) -> None:
    t = task_row("e9", "open", "w1", "003x", 1)
    write_hour(
        tmp_path,
        3,
        events=[{"event_id": "e9", "org_id": ORG, "type": "open", "sender": None}],
        tasks=[t],
        relations=relation_rows(t["task_key"], ["003x"]),
        rejected=[{"event_id": None, "email": None, "reason": "malformed", "detail": "line 2"}],
        summary=hour_summary("shared", "on", True, events=1, tasks=1, relations=1),
    )
    senders = audit.sender_counts(audit.read_day(tmp_path, ORG, DAY))
    unknown = _row(senders, audit.UNKNOWN_SENDER)
    assert (unknown["events"], unknown["tasks"], unknown["rejected_malformed"]) == (1, 1, 1)


def test_an_empty_day_audits_to_zeros_without_failing(tmp_path: Path) -> None:
    result = audit.run_audit(tmp_path, ORG, DAY, now=NOW)
    h = result.document["headline"]
    assert (h["events"], h["tasks"], h["individual_mode_tasks"], h["change_pct"]) == (0, 0, 0, None)
    assert result.senders.empty
    # Nothing was synced on a day that is over: that is what the coverage alert says.
    assert [a["kind"] for a in result.alerts] == ["coverage"]


def test_a_recent_hour_without_load_results_is_in_progress_and_an_old_one_is_not_loaded(
    tmp_path: Path,
) -> None:
    t = task_row("e1", "open", "w1", "003x", 1)
    write_hour(
        tmp_path,
        5,
        events=[event_row("e1", "open", "a@acme.com")],
        tasks=[t],
        relations=relation_rows(t["task_key"], ["003x"]),
        rejected=[],
        summary=hour_summary("shared", "on", True, events=1, tasks=1, relations=1),
    )
    inputs = audit.read_day(tmp_path, ORG, DAY)
    written = inputs.summaries["plan_written_at"].iloc[0]
    soon = audit.hour_counts(inputs, written + timedelta(minutes=5), AuditOptions())
    later = audit.hour_counts(inputs, written + timedelta(hours=3), AuditOptions())
    assert soon["load_state"].tolist() == ["in_progress"]
    assert later["load_state"].tolist() == ["not_loaded"]


# --------------------------------------------------------------------------- alerts


def test_r12_a_fallback_hour_raises_one_alert_naming_the_hour(lake_root: Path) -> None:
    alerts = audit.run_audit(lake_root, ORG, DAY, now=NOW).alerts
    (fallback,) = [a for a in alerts if a["kind"] == "fallback"]
    assert fallback["details"]["hour"] == 10
    assert "10:00 UTC fell back to individual mode" in fallback["message"]
    assert fallback["id"] == f"{ORG}/{DAY}/fallback/hour=10"


MIX = {"sent": {"events": 100, "tasks": 40}, "open": {"events": 50, "tasks": 50}}


def test_a_drop_in_tasks_explained_by_fewer_events_does_not_alert() -> None:
    today = {"sent": {"events": 50, "tasks": 20}, "open": {"events": 10, "tasks": 10}}
    assert day_over_day_alert(ORG, DAY, today, MIX, AuditOptions()) is None


def test_a_drop_in_tasks_per_event_beyond_the_threshold_alerts() -> None:
    # Same events, but far fewer matched recipients: 20 Tasks where 40 were expected.
    today = {"sent": {"events": 100, "tasks": 20}, "open": {"events": 50, "tasks": 30}}
    alert = day_over_day_alert(ORG, DAY, today, MIX, AuditOptions())
    assert alert is not None and alert["kind"] == "day_over_day"
    assert alert["details"]["change_pct"] == -44.4
    assert alert["details"]["expected_tasks"] == 90.0
    assert alert["details"]["unexplained_pct"] == -44.4
    assert alert["details"]["tasks_per_event_yesterday"] == {"open": 1.0, "sent": 0.4}


def test_a_switch_to_individual_mode_shows_as_an_unexplained_rise() -> None:
    today = {"sent": {"events": 100, "tasks": 250}, "open": {"events": 50, "tasks": 50}}
    alert = day_over_day_alert(ORG, DAY, today, MIX, AuditOptions())
    assert alert is not None and alert["details"]["change_pct"] == pytest.approx(233.3)


def test_the_change_threshold_is_configurable() -> None:
    today = {"sent": {"events": 100, "tasks": 20}, "open": {"events": 50, "tasks": 30}}
    assert day_over_day_alert(ORG, DAY, today, MIX, AuditOptions(change_threshold_pct=50)) is None


def test_a_partial_day_with_the_usual_tasks_per_event_does_not_alert() -> None:
    today = {"sent": {"events": 10, "tasks": 4}, "open": {"events": 5, "tasks": 5}}
    assert (
        day_over_day_alert(ORG, DAY, today, MIX, AuditOptions(min_tasks_for_change_alert=1)) is None
    )


def test_tiny_days_and_days_without_a_baseline_never_alert() -> None:
    small = {"sent": {"events": 10, "tasks": 4}}
    assert (
        day_over_day_alert(ORG, DAY, {"sent": {"events": 10, "tasks": 1}}, small, AuditOptions())
        is None
    )
    assert day_over_day_alert(ORG, DAY, MIX, None, AuditOptions()) is None


def test_the_day_over_day_alert_reads_the_previous_days_audit(lake_root: Path) -> None:
    yesterday = "2026-11-19"
    # Yesterday 20 sent events made 100 Tasks; today's 3 would make 15, not 6.
    many = [task_row(f"y{i}", "sent", "b0", "003y", 1) for i in range(100)]
    write_hour(
        lake_root,
        9,
        day=yesterday,
        events=[event_row(f"y{i // 3}", "sent", "a@acme.com") for i in range(0, 60, 3)]
        + [event_row("yo", "open", "a@acme.com")],
        tasks=many,
        relations=[],
        rejected=[],
        summary=hour_summary("shared", "on", True, events=21, tasks=100, relations=100),
        task_results=[],
    )
    audit.run_audit(lake_root, ORG, yesterday, now=NOW)
    options = AuditOptions(min_tasks_for_change_alert=5)
    result = audit.run_audit(lake_root, ORG, DAY, now=NOW, options=options)
    kinds = [a["kind"] for a in result.alerts]
    assert kinds == ["coverage", "fallback", "day_over_day"]
    assert result.alerts[2]["details"]["expected_tasks"] == 15.0
    assert result.document["compared_with"] == yesterday


def test_alerts_already_sent_are_not_sent_again(lake_root: Path) -> None:
    alerts = audit.run_audit(lake_root, ORG, DAY, now=NOW).alerts
    assert audit.unnotified(alerts, audit.notified_ids(lake_root, ORG, DAY)) == alerts
    audit.mark_notified(lake_root, ORG, DAY, alerts)
    again = audit.run_audit(lake_root, ORG, DAY, now=NOW).alerts
    assert audit.unnotified(again, audit.notified_ids(lake_root, ORG, DAY)) == []


def test_notify_logs_each_alert_and_calls_the_configured_callback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[tuple[list[dict], dict]] = []
    module = types.ModuleType("my_alerts")
    module.send = lambda alerts, context: received.append((alerts, context))
    monkeypatch.setitem(sys.modules, "my_alerts", module)
    monkeypatch.setenv(audit.ALERT_CALLBACK_ENV, "my_alerts:send")
    alerts = [
        audit.fallback_alerts(
            ORG,
            DAY,
            pd.DataFrame({"hour": [4], "fallback": [True], "mode_reason": ["x"]}),
            audit.hour_labels(DAY, "UTC"),
        )[0]
    ]
    with caplog.at_level(logging.WARNING, logger="activity_sync.audit"):
        assert audit.notify(alerts, {"run_id": "r1"}) == 1
    assert received == [(alerts, {"run_id": "r1"})]
    assert "fell back to individual mode" in caplog.records[0].getMessage()
    assert caplog.records[0].levelno == logging.WARNING


def test_notify_without_alerts_calls_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(audit.ALERT_CALLBACK_ENV, "no_such_module:send")
    assert audit.notify([], {}) == 0


def test_a_malformed_callback_path_is_an_error_that_names_the_variable() -> None:
    with pytest.raises(audit.AlertCallbackError, match=audit.ALERT_CALLBACK_ENV):
        audit.load_callback("just_a_module")
    with pytest.raises(audit.AlertCallbackError, match="is not callable"):
        audit.load_callback("activity_sync.audit:ALERT_CALLBACK_ENV")


def test_the_audits_own_errors_are_activity_sync_errors() -> None:
    assert issubclass(audit.AlertCallbackError, ActivitySyncError)
    assert issubclass(audit.AuditTargetError, ActivitySyncError)


# --------------------------------------------------------------------------- outputs


def test_outputs_are_written_to_the_audit_folder_and_match_the_counts(lake_root: Path) -> None:
    result = audit.run_audit(lake_root, ORG, DAY, now=NOW)
    out = lake.audit_folder(lake_root, ORG, DAY)
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "counts.parquet", "report.html"]
    counts = pd.read_parquet(out / lake.AUDIT_COUNTS)
    pd.testing.assert_frame_equal(counts, result.senders)
    document = json.loads((out / lake.AUDIT_DOCUMENT).read_text())
    assert document["headline"]["tasks"] == 7
    assert document["by_type"] == {
        t: {"events": e, "tasks": n, "salesforce_events": 0, "individual_mode_salesforce_events": 0}
        for t, e, n in (("sent", 3, 6), ("reply", 1, 0), ("open", 1, 1))
    }
    assert [h["mode"] for h in document["hours"]] == ["shared", "individual"]
    assert (out / lake.AUDIT_REPORT).read_text().startswith("<!doctype html>")


def test_rerunning_an_audit_gives_the_same_outputs(lake_root: Path) -> None:
    first = audit.run_audit(lake_root, ORG, DAY, now=NOW)
    second = audit.run_audit(lake_root, ORG, DAY, now=NOW)
    assert first.document == second.document
    assert first.html == second.html


# --------------------------------------------------------------------------- run targets


def test_a_day_param_audits_that_day_for_the_chosen_orgs() -> None:
    assert audit.audit_targets(orgs=["b", "a"], day="2026-10-01") == [
        {"org_id": "a", "day": "2026-10-01"},
        {"org_id": "b", "day": "2026-10-01"},
    ]


def test_an_asset_triggered_run_audits_the_days_and_orgs_that_loaded() -> None:
    extras = [
        {"start": "2026-11-20T23:00:00+00:00", "orgs": ["a"]},
        {"start": "2026-11-21T00:00:00+00:00", "orgs": ["a", "b"]},
        {"start": "2026-11-21T01:00:00+00:00", "orgs": ["b"]},
    ]
    assert audit.audit_targets(orgs=["a", "b", "c"], asset_extras=extras) == [
        {"org_id": "a", "day": "2026-11-20"},
        {"org_id": "a", "day": "2026-11-21"},
        {"org_id": "b", "day": "2026-11-21"},
    ]


def test_an_asset_event_naming_no_orgs_stands_for_every_org_the_run_covers() -> None:
    extras = [
        {"start": "2026-11-21T00:00:00+00:00", "orgs": ["a", "b"]},
        {"start": "2026-11-22T00:00:00+00:00"},
    ]
    assert audit.audit_targets(orgs=["b", "c"], asset_extras=extras) == [
        {"org_id": "b", "day": "2026-11-21"},
        {"org_id": "b", "day": "2026-11-22"},
        {"org_id": "c", "day": "2026-11-22"},
    ]


def test_the_daily_run_and_a_backfill_audit_the_day_before_their_logical_date() -> None:
    logical = datetime(2026, 11, 21, 0, 30, tzinfo=UTC)
    assert audit.audit_targets(orgs=["a"], logical_date=logical) == [
        {"org_id": "a", "day": "2026-11-20"}
    ]


def test_a_malformed_day_or_a_run_without_any_day_is_refused_with_a_clear_message() -> None:
    with pytest.raises(audit.AuditTargetError, match="YYYY-MM-DD"):
        audit.audit_targets(orgs=["a"], day="20/11/2026")
    with pytest.raises(audit.AuditTargetError, match="set params.day"):
        audit.audit_targets(orgs=["a"])


def test_r13_per_sender_individual_mode_is_exact_when_the_planner_counted_it_per_sender(
    lake_root: Path,
) -> None:
    """R13 per sender: plans that carry the planner's per-sender figure are not estimated."""
    for hour, counts in (
        (9, {"Alice@Acme.com ": 61, "bob@acme.com": 4}),
        (10, {"alice@acme.com": 2}),
    ):
        path = (
            lake.partition(
                lake_root, lake.PLAN, ORG, datetime.fromisoformat(f"{DAY}T{hour:02d}:00:00+00:00")
            )
            / lake.PLAN_SUMMARY
        )
        summary = json.loads(path.read_text())
        path.write_text(json.dumps({**summary, "individual_mode_tasks_by_sender": counts}))
    senders = audit.sender_counts(audit.read_day(lake_root, ORG, DAY))
    assert _row(senders, "alice@acme.com")["individual_mode_tasks"] == 63
    assert _row(senders, "bob@acme.com")["individual_mode_tasks"] == 4
    assert not senders["individual_mode_estimated"].any()
    assert senders["individual_mode_tasks"].sum() == 65 + 2  # the planner's hour figures


# --------------------------------------------------------------------------- R14


def test_r14_salesforce_events_are_counted_per_sender_next_to_what_individual_mode_makes(
    tmp_path: Path,
) -> None:
    meeting_hour(tmp_path, failed=True)
    senders = audit.sender_counts(audit.read_day(tmp_path, ORG, DAY))
    carol, dave = _row(senders, "carol@acme.com"), _row(senders, "dave@acme.com")
    assert (carol["salesforce_events"], carol["salesforce_events_loaded"]) == (1, 1)
    assert (carol["event_relations"], carol["individual_mode_salesforce_events"]) == (5, 5)
    assert (carol["tasks"], carol["individual_mode_tasks"], carol["events_meeting"]) == (0, 0, 1)
    assert (dave["salesforce_events"], dave["salesforce_events_loaded"]) == (1, 0)
    assert dave["dead_lettered"] == 1 and carol["dead_lettered"] == 0


def test_r14_salesforce_events_are_counted_per_hour_and_in_the_headline(tmp_path: Path) -> None:
    sample_day(tmp_path)
    meeting_hour(tmp_path)
    result = audit.run_audit(tmp_path, ORG, DAY, now=NOW)
    hours = {h["hour"]: h for h in result.document["hours"]}
    figures = ("salesforce_events", "salesforce_events_loaded", "event_relations")
    assert [hours[11][f] for f in figures] == [2, 2, 6]
    assert hours[11]["individual_mode_salesforce_events"] == 6
    assert hours[9]["salesforce_events"] == 0, "an hour planned before R14 has none"
    head = result.document["headline"]
    assert (head["salesforce_events"], head["individual_mode_salesforce_events"]) == (2, 6)
    assert (head["tasks"], head["individual_mode_tasks"]) == (7, 67)
    assert result.document["by_type"]["meeting"] == {
        "events": 2,
        "tasks": 0,
        "salesforce_events": 2,
        "individual_mode_salesforce_events": 6,
    }


def test_r14_meetings_turned_into_salesforce_events_raise_no_day_over_day_alert() -> None:
    """Yesterday each meeting made 3 Tasks; today they are one Salesforce Event each, which
    stand for the same 3 Tasks: no change to explain."""
    yesterday = {"meeting": {"events": 20, "tasks": 60}, "sent": {"events": 50, "tasks": 20}}
    today = {
        "meeting": {
            "events": 20,
            "tasks": 0,
            "salesforce_events": 20,
            "individual_mode_salesforce_events": 60,
        },
        "sent": {"events": 50, "tasks": 20},
    }
    assert day_over_day_alert(ORG, DAY, today, yesterday, AuditOptions()) is None
