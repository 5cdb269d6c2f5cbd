"""The hourly DAG end to end: real Airflow (``dag.test()``), real SalesforceHook and
simple-salesforce, real HTTPS to the emulator, real Parquet in a lake (R1, R11, R12).

Each test lands a generated slice of email activity for the emulator's seeded org, runs
the DAG for one hour, and compares what Salesforce holds (queried back over the API) with
the plan the run wrote.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import hourly_deployment
import pandas as pd
import pytest
from hourly_deployment import HOUR, ORG
from salesforce_state import (
    EXT,
    salesforce_events,
)

from activity_sync import lake
from activity_sync.activity_kinds import SALESFORCE_EVENTS
from activity_sync.airflow_adapter import LOADED_ASSET
from activity_sync.load import LoadOptions, load_plan, task_rows
from activity_sync.schema import Plan


class Deployment(hourly_deployment.Deployment):
    """The shared test deployment, whose landed day also holds the hour's meetings (R14)."""

    def day_events(self, crm, sends: int) -> pd.DataFrame:
        return pd.concat([super().day_events(crm, sends), hourly_deployment.meetings_at(crm, HOUR)])


@pytest.fixture
def deployment(tmp_path, fresh_emulator, monkeypatch, airflow_db) -> Deployment:
    d = Deployment(tmp_path, fresh_emulator, monkeypatch)
    d.land_day()
    return d


def run_hour(dag, **conf):
    # A manual run's data interval is the last complete hour before its logical date.
    # Every param explicitly: dag.test() in one process keeps an earlier run's conf.
    conf = {"dry_run": False, **conf}
    return dag.test(logical_date=HOUR + timedelta(hours=1), run_conf=conf)


def test_r11_one_hour_loads_exactly_the_planned_tasks_and_relations(hourly_dag, deployment):
    run = run_hour(hourly_dag)
    assert run.state == "success"
    plan = deployment.plan()
    assert len(plan.tasks) > 20 and (plan.tasks["who_count"] > 1).any()
    deployment.assert_salesforce_holds_exactly_the_plan()
    summary = deployment.load_summary()
    assert summary["tasks_created"] == len(plan.tasks)
    assert summary["relations_inserted"] == int((~plan.relations["is_primary"]).sum())


def test_r11_running_the_same_hour_again_changes_nothing(hourly_dag, deployment):
    run_hour(hourly_dag)
    before = deployment.salesforce_tasks().sort_values(EXT).reset_index(drop=True)
    relations_before = len(deployment.salesforce_relations())
    assert run_hour(hourly_dag).state == "success"
    after = deployment.salesforce_tasks().sort_values(EXT).reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)
    assert len(deployment.salesforce_relations()) == relations_before
    summary = deployment.load_summary()
    assert summary["tasks_created"] == 0
    assert summary["relations_inserted"] == 0
    assert summary["relations_existing"] == summary["relations_planned"]


def _planned_only(dag, deployment) -> Plan:
    """Run the hour as a dry run: the plan is written, Salesforce is untouched."""
    run = run_hour(dag, dry_run=True)
    assert run.state == "success"
    assert deployment.salesforce_tasks().empty
    return deployment.plan()


def test_r11_a_load_killed_after_creating_its_task_job_ends_exact_on_rerun(hourly_dag, deployment):
    plan = _planned_only(hourly_dag, deployment)
    # What a worker killed between "job created + data uploaded" and "UploadComplete" leaves.
    bulk = deployment.emulator.simple_salesforce().bulk2.Task._client
    job = bulk.create_job("upsert", external_id_field=EXT, line_ending="CRLF")
    bulk.upload_job_data(
        job["id"], task_rows(plan.tasks, EXT).to_csv(index=False, lineterminator="\r\n")
    )
    assert run_hour(hourly_dag).state == "success"
    deployment.assert_salesforce_holds_exactly_the_plan()


def test_r11_a_load_killed_after_the_task_job_finished_ends_exact_on_rerun(hourly_dag, deployment):
    plan = _planned_only(hourly_dag, deployment)
    tasks_only = Plan(plan.tasks, plan.relations[plan.relations["is_primary"]], plan.rejected, {})
    load_plan(tasks_only, deployment.client, LoadOptions())
    assert run_hour(hourly_dag).state == "success"
    deployment.assert_salesforce_holds_exactly_the_plan()
    summary = deployment.load_summary()
    assert summary["tasks_created"] == 0
    assert summary["relations_inserted"] == summary["relations_planned"]


def test_r11_a_load_killed_with_relations_half_inserted_ends_exact_on_rerun(hourly_dag, deployment):
    plan = _planned_only(hourly_dag, deployment)
    extra = plan.relations[~plan.relations["is_primary"]]
    half = pd.concat([plan.relations[plan.relations["is_primary"]], extra.iloc[: len(extra) // 2]])
    load_plan(Plan(plan.tasks, half, plan.rejected, {}), deployment.client, LoadOptions())
    assert run_hour(hourly_dag).state == "success"
    deployment.assert_salesforce_holds_exactly_the_plan()
    summary = deployment.load_summary()
    assert summary["relations_existing"] == len(extra) // 2
    assert summary["relations_inserted"] == len(extra) - len(extra) // 2


def test_r14_the_hours_meetings_load_as_salesforce_events_exactly_and_again_make_nothing(
    hourly_dag, deployment
):
    assert run_hour(hourly_dag).state == "success"
    plan = deployment.plan()
    events = plan.salesforce_events
    assert len(events) >= 4 and events["who_count"].max() == 50
    deployment.assert_salesforce_holds_exactly_the_plan()
    summary = deployment.load_summary()
    assert summary["salesforce_events_created"] == len(events)
    extra = int((~plan.event_relations["is_primary"]).sum())
    assert summary["event_relations_inserted"] == extra > 50
    assert run_hour(hourly_dag).state == "success"
    deployment.assert_salesforce_holds_exactly_the_plan()
    summary = deployment.load_summary()
    assert (summary["salesforce_events_created"], summary["event_relations_inserted"]) == (0, 0)
    assert summary["event_relations_existing"] == extra


def test_r14_a_load_killed_after_creating_its_event_job_ends_exact_on_rerun(hourly_dag, deployment):
    plan = _planned_only(hourly_dag, deployment)
    assert not plan.salesforce_events.empty
    # The Tasks loaded, then the worker died between "Event job created + data uploaded"
    # and "UploadComplete".
    load_plan(Plan(plan.tasks, plan.relations, plan.rejected, {}), deployment.client)
    bulk = deployment.emulator.simple_salesforce().bulk2.Event._client
    job = bulk.create_job("upsert", external_id_field=EXT, line_ending="CRLF")
    rows = task_rows(plan.salesforce_events, EXT, SALESFORCE_EVENTS)
    bulk.upload_job_data(job["id"], rows.to_csv(index=False, lineterminator="\r\n"))
    assert run_hour(hourly_dag).state == "success"
    deployment.assert_salesforce_holds_exactly_the_plan()


def test_r14_a_load_killed_after_the_event_job_finished_ends_exact_on_rerun(hourly_dag, deployment):
    plan = _planned_only(hourly_dag, deployment)
    primaries = plan.event_relations[plan.event_relations["is_primary"]]
    partial = Plan(plan.tasks, plan.relations, plan.rejected, {}, plan.salesforce_events, primaries)
    load_plan(partial, deployment.client, LoadOptions())
    assert run_hour(hourly_dag).state == "success"
    deployment.assert_salesforce_holds_exactly_the_plan()
    summary = deployment.load_summary()
    assert summary["salesforce_events_created"] == 0
    assert summary["event_relations_inserted"] == summary["event_relations_planned"]


def test_r14_a_load_killed_with_event_relations_half_inserted_ends_exact_on_rerun(
    hourly_dag, deployment
):
    plan = _planned_only(hourly_dag, deployment)
    people = plan.event_relations
    extra = people[~people["is_primary"]]
    half = pd.concat([people[people["is_primary"]], extra.iloc[: len(extra) // 2]])
    partial = Plan(plan.tasks, plan.relations, plan.rejected, {}, plan.salesforce_events, half)
    load_plan(partial, deployment.client, LoadOptions())
    assert run_hour(hourly_dag).state == "success"
    deployment.assert_salesforce_holds_exactly_the_plan()
    summary = deployment.load_summary()
    assert summary["event_relations_existing"] == len(extra) // 2
    assert summary["event_relations_inserted"] == len(extra) - len(extra) // 2


def test_with_five_percent_faults_every_row_is_loaded_or_dead_lettered(hourly_dag, deployment):
    deployment.emulator.set_faults(
        seed=11,
        http_503_rate=0.05,
        request_limit_rate=0.05,
        expired_session_rate=0.05,
        row_lock_rate=0.05,
        slow_bulk_seconds=0.2,
    )
    run_hour(hourly_dag)
    stats = deployment.emulator.stats()
    deployment.emulator.set_faults()
    assert sum(stats["faults"]["injected"].values()) > 0, "no fault was injected"
    plan = deployment.plan()
    loaded = pd.read_parquet(deployment.part(lake.LOADED) / lake.TASK_RESULTS)
    dead = pd.read_parquet(deployment.part(lake.LOADED) / lake.DEAD_LETTER)
    held = set(deployment.salesforce_tasks()[EXT])
    dead_tasks = set(dead.loc[dead["object"] == "Task", "task_key"])
    assert held | dead_tasks == set(plan.tasks["task_key"]), "a Task was lost"
    assert not held & dead_tasks
    assert dead["error_code"].notna().all()
    assert set(loaded["task_key"]) == set(plan.tasks["task_key"])
    relations = pd.read_parquet(deployment.part(lake.LOADED) / lake.RELATION_RESULTS)
    assert len(relations) == len(plan.relations)
    assert (
        relations["status"].isin(["primary", "inserted", "existing", "failed", "task_failed"]).all()
    )
    # R14: every planned Salesforce Event and EventRelation too.
    held_events = set(salesforce_events(deployment.client).get(EXT, []))
    dead_events = set(dead.loc[dead["object"] == "Event", "event_key"])
    assert held_events | dead_events == set(plan.salesforce_events["event_key"])
    assert not held_events & dead_events
    people = pd.read_parquet(deployment.part(lake.LOADED) / lake.EVENT_RELATION_RESULTS)
    assert len(people) == len(plan.event_relations)
    statuses = {"primary", "inserted", "existing", "related", "failed", "salesforce_event_failed"}
    assert people["status"].isin(statuses).all()


def test_r12_shared_activities_switched_off_in_salesforce_makes_the_next_run_individual(
    hourly_dag, deployment
):
    deployment.emulator.set_settings(shared_activities=False)
    assert run_hour(hourly_dag).state == "success"
    summary = deployment.plan().summary
    assert summary["mode"] == "individual"
    assert summary["fallback"] is True
    assert "Salesforce org has Shared Activities off" in summary["mode_reason"]
    plan = deployment.plan()
    assert (plan.tasks["who_count"] == 1).all()
    held = deployment.salesforce_tasks()
    assert set(held[EXT]) == set(plan.tasks["task_key"])


def _states(run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def _asset_events() -> list[dict]:
    """The extra of every ``activity_sync_loaded`` event so far, oldest first (Airflow's DB;
    the runs of one module share it, and a re-run of an hour reuses its run's row)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(
            session.scalars(
                select(AssetEvent.extra)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.name == LOADED_ASSET)
                .order_by(AssetEvent.id)
            )
        )


def _outcome(deployment: Deployment, org: str) -> dict:
    path = lake.partition(deployment.lake, lake.SYNC, org, HOUR) / lake.SYNC_OUTCOME
    return json.loads(path.read_text())


def test_a_healthy_run_has_one_sync_task_per_shard_labelled_with_its_orgs_and_nothing_skipped(
    hourly_dag, deployment
):
    before = len(_asset_events())
    run = run_hour(hourly_dag)
    tis = run.get_task_instances()
    assert run.state == "success"
    assert {ti.task_id: ti.state for ti in tis} == {
        "window": "success",
        "select_orgs": "success",
        "sync": "success",
        "publish": "success",
        "summary": "success",
    }
    (sync,) = [ti for ti in tis if ti.task_id == "sync"]
    assert sync.rendered_map_index == ORG
    assert sync.xcom_pull(task_ids="sync", map_indexes=0)["orgs"][ORG]["status"] == "loaded"
    assert sync.xcom_pull(task_ids="summary") == {"orgs": 1, "loaded": 1, "failed": {}}
    outcome = _outcome(deployment, ORG)
    assert outcome["status"] == "loaded"
    assert outcome["steps"]["load"]["tasks_created"] == len(deployment.plan().tasks)
    assert outcome["api_calls"] > 0
    # The one Asset event that schedules the audit, carrying what loaded.
    (extra,) = _asset_events()[before:]
    assert extra["orgs"] == [ORG] and extra["tasks_planned"] == len(deployment.plan().tasks)


def test_a_dry_run_publishes_no_asset_event_and_skips_no_task(hourly_dag, deployment):
    before = len(_asset_events())
    run = run_hour(hourly_dag, dry_run=True)
    assert run.state == "success"
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == {
        "window": "success",
        "select_orgs": "success",
        "sync": "success",
        "publish": "success",  # nothing loaded: no event for the audit, and no skip
        "summary": "success",
    }
    assert _asset_events()[before:] == []


def test_a_missing_external_id_field_fails_the_org_with_how_to_create_it(
    hourly_dag, deployment, capfd
):
    deployment.emulator.set_settings(task_external_id_field=False)
    before = len(_asset_events())
    run = run_hour(hourly_dag)
    states = _states(run)
    assert run.state == "failed"
    assert states[("sync", 0)] == "failed"
    assert states[("summary", -1)] == "failed"
    assert states[("publish", -1)] == "success"  # no org loaded: no Asset event
    assert _asset_events()[before:] == []
    out, err = capfd.readouterr()
    assert "Object Manager > Activity > Fields & Relationships" in out + err
    error = _outcome(deployment, ORG)["error"]
    assert error["step"] == "detect" and error["type"] == "OrgSetupError"
    assert error["retryable"] is False  # a retry cannot create the field
    assert deployment.client.query("SELECT Id FROM Task").empty


def test_one_org_failing_does_not_stop_the_others_but_the_run_goes_red_naming_it(
    hourly_dag, deployment, tmp_path, capfd
):
    orgs = Path(tmp_path / "orgs.yaml")
    orgs.write_text(
        orgs.read_text()
        # An org whose Airflow connection does not exist: every Salesforce step fails.
        + "  - org_id: broken\n    salesforce_conn_id: salesforce_missing\n"
    )
    run = run_hour(hourly_dag)
    states = _states(run)
    # Both orgs share one shard (one task instance); its task fails, naming the org.
    assert states == {
        ("window", -1): "success",
        ("select_orgs", -1): "success",
        ("sync", 0): "failed",
        ("publish", -1): "success",
        ("summary", -1): "failed",
    }
    assert run.state == "failed"
    deployment.assert_salesforce_holds_exactly_the_plan()
    assert _outcome(deployment, ORG)["status"] == "loaded"
    broken = _outcome(deployment, "broken")
    assert broken["status"] == "failed"
    assert broken["error"]["step"] == "refresh_crm"
    assert "salesforce_missing" in broken["error"]["message"]
    assert broken["error"]["retryable"] is False  # Airflow does not know the connection
    out, err = capfd.readouterr()
    assert (
        "1 of 2 org(s) failed: broken (refresh_crm: The conn_id `salesforce_missing` isn't "
        f"defined (see task sync [{ORG} … broken (2 orgs)]))"
    ) in out + err


def test_a_dedicated_org_gets_a_task_of_its_own_and_the_others_share_shards(
    hourly_dag, deployment, tmp_path
):
    orgs = Path(tmp_path / "orgs.yaml")
    text = orgs.read_text().replace("version: 1\n", "version: 1\nshard_size: 2\n")
    for org in ("small1", "small2", "small3"):
        text += f"  - org_id: {org}\n    salesforce_conn_id: salesforce_{ORG}\n"
    orgs.write_text(
        text.replace(
            f"salesforce_conn_id: salesforce_{ORG}\n",
            f"salesforce_conn_id: salesforce_{ORG}\n    dedicated: true\n",
            1,
        )
    )
    run = run_hour(hourly_dag, dry_run=True)
    assert run.state == "success"
    labels = sorted(
        ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "sync"
    )
    assert labels == [ORG, "small1 … small2 (2 orgs)", "small3"]
    assert _outcome(deployment, "small3")["status"] == "planned"
    assert deployment.salesforce_tasks().empty
