"""Shards: small orgs share a task, each org on its own inside it (shards.py, shard_run.py).

``sync_shard`` runs against the real emulator over HTTPS with a real lake: one org failing
is recorded and the others load; a retry of the same attempt redoes only what did not
finish; an org over its API budget waits, planned, and loads later without planning again;
an org whose Salesforce slots are all busy never holds up the other orgs of its shard.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowRescheduleException,
)
from salesforce_state import assert_salesforce_holds_exactly

from activity_sync import lake
from activity_sync.crm import read_crm
from activity_sync.mirror import refresh_crm
from activity_sync.org_slots import FileSlots, org_slot
from activity_sync.plan import read_plan
from activity_sync.salesforce import SalesforceClient, SalesforceUnavailable
from activity_sync.shard_run import Attempt, sync_shard
from activity_sync.shards import Shard, make_shards, read_outcome, run_outcomes
from activity_sync.tenants import Org
from demo_data.generate import generate_day, write_landing

HOUR = datetime(2026, 11, 26, 14, tzinfo=UTC)
END = HOUR + timedelta(hours=1)
CONN = "salesforce_emulator"
ATTEMPT = Attempt(run="manual__1|start|0", key="manual__1|start|0|3")


def org(org_id: str, **extra) -> Org:
    return Org.from_dict({"org_id": org_id, "salesforce_conn_id": CONN, **extra})


# --- the shape ----------------------------------------------------------------------------


def test_small_orgs_share_shards_of_the_configured_size_and_dedicated_orgs_come_first_alone():
    orgs = [org("a"), org("big", dedicated=True), org("b"), org("c"), org("d"), org("e")]
    shards = make_shards(orgs, 2)
    assert [s.org_ids for s in shards] == [["big"], ["a", "b"], ["c", "d"], ["e"]]
    assert [s.label for s in shards] == ["big", "a … b (2 orgs)", "c … d (2 orgs)", "e"]
    assert len({s.key for s in shards}) == 4
    assert make_shards(orgs, 2)[1].key == shards[1].key  # stable for the same orgs
    assert Shard.from_dict(shards[1].to_dict()) == shards[1]
    assert make_shards([], 25) == []
    with pytest.raises(ValueError, match="shard_size must be at least 1"):
        make_shards(orgs, 0)


# --- running a shard ----------------------------------------------------------------------


class World:
    """A lake with landed events, the emulator behind one connection, and its slots."""

    def __init__(self, tmp_path: Path, emulator) -> None:
        self.emulator = emulator
        self.root = tmp_path / "lake"
        self.slots = FileSlots(tmp_path / "locks")
        self.client = SalesforceClient(emulator.simple_salesforce, poll_wait=0.05, backoff=0.05)
        self.broken: dict[str, Exception] = {}
        crm_dir = tmp_path / "crm"
        refresh_crm(self.client, crm_dir)
        self.crm = read_crm(crm_dir)

    def land(self, org_id: str, seed: int) -> None:
        events = generate_day(self.crm, org_id=org_id, day=date(2026, 11, 26), seed=seed, sends=80)
        write_landing(events, self.root / "landing", org_id)

    def client_for(self, conn_id: str) -> SalesforceClient:
        if conn_id in self.broken:
            raise self.broken[conn_id]
        assert conn_id == CONN
        return SalesforceClient(self.emulator.simple_salesforce, poll_wait=0.05, backoff=0.05)

    def sync(self, orgs: list[Org], attempt: Attempt = ATTEMPT, **kwargs):
        return sync_shard(
            Shard(tuple(orgs)),
            root=self.root,
            start=HOUR,
            end=END,
            attempt=attempt,
            client_for=self.client_for,
            slots=self.slots,
            permanent=(AirflowNotFoundException,),
            **kwargs,
        )

    def plan(self, org_id: str):
        return read_plan(lake.partition(self.root, lake.PLAN, org_id, HOUR))

    def api_calls(self) -> int:
        return self.emulator.stats()["api"]["api_calls"]


@pytest.fixture
def world(tmp_path, fresh_emulator) -> World:
    w = World(tmp_path, fresh_emulator)
    for seed, org_id in enumerate(("a", "b", "c")):
        w.land(org_id, seed)
    return w


def test_one_org_failing_is_recorded_and_the_other_orgs_of_its_shard_load(world):
    orgs = [org("a"), org("b", salesforce_conn_id="salesforce_missing"), org("c")]
    world.broken["salesforce_missing"] = AirflowNotFoundException(
        "The conn_id `salesforce_missing` isn't defined"
    )
    result = world.sync(orgs)
    assert {o: v["status"] for o, v in result.outcomes.items()} == {
        "a": "loaded",
        "b": "failed",
        "c": "loaded",
    }
    error = result.failed["b"]["error"]
    assert error == {
        "step": "refresh_crm",
        "type": "AirflowNotFoundException",
        "message": "The conn_id `salesforce_missing` isn't defined",
        "retryable": False,
    }
    assert not result.retry_can_help
    assert result.failure_message() == (
        "1 of 3 org(s) failed: b: refresh_crm: The conn_id `salesforce_missing` isn't defined"
    )
    assert_salesforce_holds_exactly(world.client, [world.plan("a"), world.plan("c")])
    assert read_outcome(world.root, "b", HOUR) == result.outcomes["b"]
    summary = result.summary()
    assert summary["a"]["tasks_created"] == len(world.plan("a").tasks) > 0
    assert summary["b"]["error"].startswith("The conn_id")


def test_a_retry_of_the_same_attempt_syncs_only_the_orgs_that_did_not_finish(world):
    orgs = [org("a"), org("b", salesforce_conn_id="salesforce_b")]
    world.broken["salesforce_b"] = SalesforceUnavailable("HTTP 503 after 6 attempts")
    first = world.sync(orgs)
    assert first.failed["b"]["error"]["retryable"] and first.retry_can_help
    world.broken.clear()
    calls = world.api_calls()
    second = world.sync([org("a"), org("b")])
    assert second.outcomes["a"] == first.outcomes["a"]  # not synced again
    assert second.outcomes["b"]["status"] == "loaded"
    assert world.api_calls() - calls == second.outcomes["b"]["api_calls"] > 0
    assert_salesforce_holds_exactly(world.client, [world.plan("a"), world.plan("b")])
    # A new attempt (a new run of the hour, or a clear) syncs every org again: R11 keeps
    # Salesforce exact, the upsert updates rather than creates.
    again = world.sync([org("a")], Attempt(run="manual__2|start|0", key="manual__2|start|0|3"))
    assert again.outcomes["a"]["steps"]["load"]["tasks_created"] == 0
    assert again.outcomes["a"]["steps"]["load"]["tasks_updated"] == len(world.plan("a").tasks)
    outcomes = run_outcomes(
        world.root, make_shards([org("a"), org("b")], 5), HOUR, "manual__2|start|0"
    )
    assert outcomes["a"]["status"] == "loaded" and outcomes["b"] is None  # b: the earlier run's


def test_an_org_over_its_api_budget_waits_planned_and_loads_later_without_planning_again(world):
    # A share of 0.0001 of the emulator's 100,000 daily requests: spent by the CRM refresh.
    thrifty = org("a", api_budget_share=0.0001)
    first = world.sync([thrifty])
    waiting = first.waiting["a"]
    assert waiting["status"] == "waiting_for_budget" and "load" not in waiting["steps"]
    assert waiting["waiting_since"] is not None
    assert world.client.query("SELECT Id FROM Task").empty
    plan_file = lake.partition(world.root, lake.PLAN, "a", HOUR) / lake.PLAN_TASKS
    planned_at = plan_file.stat().st_mtime_ns
    later = world.sync([org("a")])  # the org's budget is back (here: a larger share)
    assert later.outcomes["a"]["status"] == "loaded"
    assert later.outcomes["a"]["steps"]["plan"] == waiting["steps"]["plan"]
    assert plan_file.stat().st_mtime_ns == planned_at  # not planned again
    assert_salesforce_holds_exactly(world.client, [world.plan("a")])


def test_an_org_still_over_its_budget_after_a_day_fails_for_good(world):
    thrifty = org("a", api_budget_share=0.0001)
    world.sync([thrifty])
    tomorrow = datetime.now(UTC) + timedelta(hours=25)
    result = world.sync([thrifty], now=lambda: tomorrow)
    error = result.failed["a"]["error"]
    assert error["step"] == "budget" and error["retryable"] is False
    assert error["message"].startswith("API budget still exhausted after 1 day")


def test_an_org_whose_salesforce_slots_are_all_busy_never_holds_up_the_rest_of_its_shard(world):
    busy, other = org("a", salesforce_concurrency=1), org("b")
    release = threading.Event()
    held = threading.Event()

    def another_run_of_a() -> None:
        with org_slot(world.slots, "a", 1, "load of a in another run"):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=another_run_of_a)
    holder.start()
    held.wait(10)
    shard = threading.Thread(target=world.sync, args=([busy, other],), kwargs={"threads": 2})
    shard.start()
    deadline = time.monotonic() + 60
    while (read_outcome(world.root, "b", HOUR) or {}).get("status") != "loaded":
        assert time.monotonic() < deadline, "b waited for a's slot"
        time.sleep(0.1)
    assert read_outcome(world.root, "a", HOUR)["status"] == "running"  # still waiting
    release.set()
    holder.join()
    shard.join(60)
    assert read_outcome(world.root, "a", HOUR)["status"] == "loaded"


# --- what the sync task tells Airflow -------------------------------------------------------


class FakeDagRun:
    """The task context's ``dag_run``, as far as the sync task reads it."""

    run_id = "manual__2026-11-26T15:00:00+00:00"
    start_date = datetime(2026, 11, 26, 15, 0, 5, tzinfo=UTC)
    clear_number = 0


class FakeTaskInstance:
    max_tries = 3


@pytest.fixture
def sync_task(world, tmp_path, monkeypatch):
    """Runs ``airflow_adapter.sync_shard_task`` on a shard, with the run's context faked."""
    from activity_sync.airflow_adapter import sync_shard_task

    monkeypatch.setenv("ACTIVITY_SYNC_LAKE", str(world.root))
    monkeypatch.setenv("ACTIVITY_SYNC_LOCKS", str(tmp_path / "task-locks"))
    monkeypatch.setenv("ACTIVITY_SYNC_BULK_POLL_SECONDS", "0.05")
    monkeypatch.setenv("ACTIVITY_SYNC_RETRY_BACKOFF_SECONDS", "0.01")
    connection = json.dumps(world.emulator.airflow_connection())
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", connection)
    window = {"start": HOUR.isoformat(), "end": END.isoformat()}
    context = {"dag_run": FakeDagRun(), "ti": FakeTaskInstance(), "params": {"dry_run": False}}
    return lambda orgs: sync_shard_task(Shard(tuple(orgs)).to_dict(), window, context)


def test_the_sync_task_returns_each_orgs_result_when_every_org_loaded(sync_task):
    result = sync_task([org("a"), org("b")])
    assert result["shard"] == "a … b (2 orgs)"
    assert {o: v["status"] for o, v in result["orgs"].items()} == {"a": "loaded", "b": "loaded"}
    assert all(type(v["status"]) is str for v in result["orgs"].values())  # plain XCom


def test_the_sync_task_is_rescheduled_in_fifteen_minutes_while_an_org_waits_for_budget(sync_task):
    before = datetime.now(UTC)
    with pytest.raises(AirflowRescheduleException) as err:
        sync_task([org("a", api_budget_share=0.0001), org("b")])
    assert timedelta(minutes=14) < err.value.reschedule_date - before < timedelta(minutes=16)


def test_the_sync_task_fails_for_good_when_no_retry_can_help_and_retryably_otherwise(
    sync_task, world
):
    with pytest.raises(AirflowFailException, match="broken: refresh_crm: The conn_id"):
        sync_task([org("a"), org("broken", salesforce_conn_id="salesforce_missing")])
    world.emulator.set_faults(http_503_rate=1.0)  # Salesforce down past every retry
    # The same attempt again: a, loaded above, is not synced again; c meets the outage.
    with pytest.raises(AirflowException, match="1 of 2 org\\(s\\) failed: c: refresh_crm: ") as err:
        sync_task([org("a"), org("c")])
    world.emulator.set_faults()
    assert "still failing after 6 attempts" in str(err.value)
    assert not isinstance(err.value, AirflowFailException)  # Airflow retries it
