"""The test controls under /__emulator/: stats, settings and reset."""

from __future__ import annotations

from datetime import UTC, datetime


def _post(emu, path: str, body: dict):
    return emu.session().post(
        f"{emu.info.instance_url}/__emulator/{path}",
        json=body,
        headers={"Authorization": f"Bearer {emu.info.access_token}"},
    )


def test_reset_returns_data_counters_faults_and_settings_to_the_start(sf, fresh_emulator):
    seeded = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
    sf.Contact.delete(seeded)
    sf.Account.create({"Name": "Temporary"})
    sf.bulk2.Account.insert(records=[{"Name": "Bulk temporary"}], wait=0.05)
    fresh_emulator.set_settings(
        shared_activities=False,
        api_limit=50,
        today="2030-01-01",
        upload_limit_bytes=10,
        lock_wait_seconds=0.5,
    )
    fresh_emulator.set_faults(seed=1, row_lock_rate=0.5)
    fresh_emulator.expire_sessions()

    stats = fresh_emulator.reset()

    assert stats["api"]["api_calls"] == 0 and stats["api"]["by_route"] == {}
    assert stats["jobs"]["total"] == 0
    assert stats["rows"]["Contact"] == {"live": 400, "deleted": 0}
    assert stats["rows"]["Account"] == {"live": 40, "deleted": 0}
    assert stats["settings"] == {
        "shared_activities": True,
        "task_external_id_field": True,
        "task_external_id_unique": True,
        "api_limit": 100_000,
        "clock_offset_days": 0,
        "upload_limit_bytes": 150_000_000,
        "lock_wait_seconds": 10.0,
        "today": datetime.now(UTC).date().isoformat(),
    }
    assert stats["faults"]["row_lock_rate"] == 0.0
    assert stats["auth"] == {"logins": 0, "expired_sessions": 0}
    assert sf.Contact.get(seeded)["Id"] == seeded


def test_stats_count_rows_per_object(sf, fresh_emulator):
    contact = sf.query("SELECT Id FROM Contact LIMIT 1")["records"][0]["Id"]
    sf.Task.create({"Subject": "counted", "WhoId": contact})
    rows = fresh_emulator.stats()["rows"]
    assert rows["Task"] == {"live": 1, "deleted": 0}
    assert rows["TaskRelation"] == {"live": 1, "deleted": 0}
    assert rows["User"]["live"] == 6


def test_settings_are_validated(fresh_emulator):
    assert _post(fresh_emulator, "settings", {"shared_activities": "yes"}).status_code == 400
    assert _post(fresh_emulator, "settings", {"sharing": True}).status_code == 400
    assert _post(fresh_emulator, "settings", {"api_limit": 0}).status_code == 400
    changed = _post(fresh_emulator, "settings", {"task_external_id_field": False})
    assert changed.json()["task_external_id_field"] is False


def test_unknown_admin_paths_are_not_found(fresh_emulator):
    assert _post(fresh_emulator, "teleport", {}).status_code == 404
