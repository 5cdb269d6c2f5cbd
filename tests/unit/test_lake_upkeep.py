"""lake_upkeep.py: the daily upkeep of an org's Delta tables (issue 10): the ledger's
files compacted, versions past the history vacuumed, and a re-run of an hour whose CRM
version is gone told to re-plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from canned_salesforce import RecordingClient, contact_row

from activity_sync import lake, lake_upkeep, ledger
from activity_sync.mirror import MirrorError, read_mirror, refresh_crm, refresh_object

H0 = datetime(2026, 11, 26, 0, tzinfo=UTC)


def _record(root, hour: int) -> None:
    start = H0 + timedelta(hours=hour)
    tasks = pd.DataFrame(
        {
            "object": "Task",
            "event_id": [f"e{hour}"],
            "task_key": [f"k{hour}"],
            "task_id": [f"00T{hour}"],
            "who_id": "003a",
            "what_id": None,
            "state": "loaded",
        }
    )
    relations = pd.DataFrame({"task_key": [f"k{hour}"], "RelationId": ["003a"]})
    ledger.record_hour(
        root, "acme", start, ledger.ledger_rows(start, [f"e{hour}"], tasks, relations)
    )


def _data_files(root) -> list:
    return list(lake.ledger_folder(root, "acme").rglob("*.parquet"))


def test_the_ledger_s_hourly_files_become_one_and_say_the_same(tmp_path):
    for hour in range(6):
        _record(tmp_path, hour)
    _record(tmp_path, 2)  # a re-run replaces its hour: one more file, one superseded
    wanted = [f"e{h}" for h in range(6)]
    before = ledger.current(tmp_path, "acme", wanted).sort_values("event_id")
    assert len([f for f in _data_files(tmp_path) if "date=" in str(f)]) == 7

    done = lake_upkeep.tidy(tmp_path, "acme", keep=timedelta(0))
    # The next day's upkeep at the latest deletes what went out of use (a file that went
    # out of use within the same millisecond may wait for it).
    again = lake_upkeep.tidy(tmp_path, "acme", keep=timedelta(0))

    assert done["ledger"]["files_compacted"] == 6 and again["ledger"]["files_compacted"] == 0
    assert len([f for f in _data_files(tmp_path) if "date=" in str(f)]) == 1
    after = ledger.current(tmp_path, "acme", wanted).sort_values("event_id")
    pd.testing.assert_frame_equal(
        before.drop(columns="relation_ids").reset_index(drop=True),
        after.drop(columns="relation_ids").reset_index(drop=True),
    )
    assert after["relation_ids"].map(list).tolist() == [["003a"]] * 6


def test_a_crm_version_older_than_the_history_is_gone_and_the_rerun_is_told_to_replan(tmp_path):
    folder = lake.crm_folder(tmp_path, "acme")
    refresh_crm(RecordingClient(contact_row("a@x.io", "2026-03-01T00:00:00Z")), folder)
    refresh_object(
        RecordingClient(contact_row("b@x.io", "2026-03-02T00:00:00Z")), "Contact", folder
    )
    assert read_mirror(folder, {"Contact": 0}).contacts["Email"].tolist() == ["a@x.io"]

    lake_upkeep.tidy(tmp_path, "acme", keep=timedelta(days=30))  # within it: replayable
    assert read_mirror(folder, {"Contact": 0}).contacts["Email"].tolist() == ["a@x.io"]

    lake_upkeep.tidy(tmp_path, "acme", keep=timedelta(0))
    with pytest.raises(MirrorError, match="replan: true"):
        read_mirror(folder, {"Contact": 0})
    assert read_mirror(folder).contacts["Email"].tolist() == ["b@x.io"]


@pytest.mark.parametrize(("raw", "days"), [(None, 30), ("", 30), ("7", 7), (" 90 ", 90)])
def test_the_history_is_30_days_unless_the_environment_says_otherwise(monkeypatch, raw, days):
    if raw is None:
        monkeypatch.delenv(lake_upkeep.HISTORY_ENV, raising=False)
    else:
        monkeypatch.setenv(lake_upkeep.HISTORY_ENV, raw)
    assert lake_upkeep.history() == timedelta(days=days)


@pytest.mark.parametrize("raw", ["0", "-3", "2.5", "a month"])
def test_a_history_that_is_no_whole_number_of_days_is_refused_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv(lake_upkeep.HISTORY_ENV, raw)
    with pytest.raises(lake_upkeep.HistorySettingError, match=lake_upkeep.HISTORY_ENV):
        lake_upkeep.history()
