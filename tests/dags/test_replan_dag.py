"""Issue 10's proofs (a)–(g): re-runs reproduce, re-plans converge, each running the real
hourly DAG (``dag.test()``) against the emulator over HTTPS, with the lake on disk.

After a re-run without ``replan`` Salesforce keeps exactly the Tasks it had; after a
re-plan it holds exactly the new plan (no extra Task, no extra relation) — except a Task
someone else edited, which is kept and reported — and a re-plan over the delete cap
changes nothing. Deleted Tasks go to the Recycle Bin (Bulk API 2.0 ``delete``; queryAll
still sees them: https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_prepare_data.htm).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hourly_deployment import DAY, HOUR, ORG, Deployment, meetings_at
from salesforce_state import EXT, assert_salesforce_holds_exactly, salesforce_relations

from activity_sync import lake
from activity_sync.audit import run_audit
from activity_sync.plan import read_plan
from activity_sync.reconcile import ReconcileOptions

SETTINGS = {"exclusions": ["competitor.com"], "open_opportunities_only": True}


class Org(Deployment):
    """The deployment, with its orgs file rewritable between runs (read at every run)."""

    def __init__(self, tmp_path: Path, emulator, monkeypatch) -> None:
        super().__init__(tmp_path, emulator, monkeypatch)
        self.orgs_file = tmp_path / "orgs.yaml"
        self.settings(SETTINGS)

    def settings(self, settings: dict) -> None:
        self.orgs_file.write_text(
            f"version: 1\norgs:\n  - org_id: {ORG}\n    salesforce_conn_id: salesforce_{ORG}\n"
            f"    settings: {json.dumps(settings)}\n"
        )

    def tasks(self) -> pd.DataFrame:
        return self.client.query(
            f"SELECT Id, {EXT}, WhoId, WhatId, IsDeleted FROM Task", include_deleted=True
        )

    def live_tasks(self) -> pd.DataFrame:
        tasks = self.tasks()
        return tasks[tasks["IsDeleted"].astype(str).str.lower().ne("true")]

    def outcome(self, hour=HOUR) -> dict:
        return json.loads(
            (lake.partition(self.lake, lake.SYNC, ORG, hour) / "outcome.json").read_text()
        )

    def audit(self) -> dict:
        """The day's audit, reconciled against Salesforce: its audit.json document."""
        audit = run_audit(
            self.lake,
            ORG,
            DAY.isoformat(),
            client=self.client,
            reconcile_options=ReconcileOptions(),
        )
        return audit.document

    def reconciliation(self) -> dict:
        return self.audit()["reconciliation"]


class OrgWithMeetings(Org):
    """The deployment whose landed hour also holds meetings, which R14 makes Salesforce
    Events."""

    def day_events(self, crm, sends: int) -> pd.DataFrame:
        return pd.concat([super().day_events(crm, sends), meetings_at(crm, HOUR)])


@pytest.fixture
def org(tmp_path, fresh_emulator, monkeypatch, airflow_db) -> Org:
    o = Org(tmp_path, fresh_emulator, monkeypatch)
    o.land_day(sends=30)
    return o


@pytest.fixture
def org_with_meetings(tmp_path, fresh_emulator, monkeypatch, airflow_db) -> OrgWithMeetings:
    o = OrgWithMeetings(tmp_path, fresh_emulator, monkeypatch)
    o.land_day(sends=10)
    return o


def run(dag, hour=HOUR, **conf):
    """One run of ``hour``; every param given (dag.test() keeps an earlier run's conf)."""
    conf = {"dry_run": False, "replan": False, "max_delete_share": None, **conf}
    return dag.test(logical_date=hour + timedelta(hours=1), run_conf=conf)


def _deliver_again(org: Org, hours: int) -> datetime:
    """Land the hour's files again ``hours`` later, beside what arrived then anyway (an
    at-least-once feed); returns that later hour."""
    later = HOUR + timedelta(hours=hours)
    landed = lake.landing_hour(org.lake / "landing", ORG, HOUR)
    target = lake.landing_hour(org.lake / "landing", ORG, later)
    for path in landed.iterdir():
        shutil.copy(path, target / f"again-{path.name}")
    return later


def _primary_with_tasks(plan) -> str:
    """A Contact that is the primary (WhoId) of shared Tasks: moving it changes their keys."""
    shared = plan.tasks[plan.tasks["who_count"] > 1]
    return shared["WhoId"].value_counts().index[0]


def _change_the_crm(org: Org, plan) -> None:
    """A Contact moves Account, an open Opportunity closes, a Contact is deleted."""
    c = org.client
    mover = _primary_with_tasks(plan)
    accounts = c.query("SELECT Id FROM Account ORDER BY Id")["Id"].tolist()
    was = c.query(f"SELECT AccountId FROM Contact WHERE Id = '{mover}'")["AccountId"][0]
    moved = c.update_records(
        "Contact",
        pd.DataFrame({"Id": [mover], "AccountId": [next(a for a in accounts if a != was)]}),
    )
    assert moved.failed.empty
    what = plan.tasks["WhatId"].dropna()
    opportunity = what[what.str.startswith("006")].value_counts().index[0]
    closed = c.update_records(
        "Opportunity", pd.DataFrame({"Id": [opportunity], "StageName": ["Closed Won"]})
    )
    assert closed.failed.empty
    others = plan.relations[~plan.relations["is_primary"]]["RelationId"]
    gone = others[others.str.startswith("003") & ~others.isin(plan.tasks["WhoId"])].iloc[0]
    org.emulator.simple_salesforce().Contact.delete(gone)


def test_a_and_b_a_rerun_reproduces_the_hour_and_a_replan_converges_to_the_new_plan(
    hourly_dag, org
):
    assert run(hourly_dag).state == "success"
    first = org.plan()
    before = org.live_tasks().sort_values(EXT).reset_index(drop=True)
    _change_the_crm(org, first)

    # (a) A re-run without replan: the CRM as the hour first saw it, the same Tasks.
    assert run(hourly_dag).state == "success"
    again = org.plan()
    assert set(again.tasks["task_key"]) == set(first.tasks["task_key"])
    after = org.live_tasks().sort_values(EXT).reset_index(drop=True)
    pd.testing.assert_frame_equal(before[["Id", EXT]], after[["Id", EXT]])
    summary = org.load_summary()
    assert summary["tasks_created"] == summary["tasks_deleted"] == 0
    assert summary["relations_inserted"] == summary["relations_deleted"] == 0

    # (b) The same with replan: Salesforce equals the new plan exactly.
    assert run(hourly_dag, replan=True, max_delete_share=1.0).state == "success"
    replanned = org.plan()
    assert set(replanned.tasks["task_key"]) != set(first.tasks["task_key"])
    assert_salesforce_holds_exactly(org.client, [replanned])
    summary = org.load_summary()
    dropped = set(first.tasks["task_key"]) - set(replanned.tasks["task_key"])
    assert summary["tasks_deleted"] == len(dropped) > 0
    deleted = org.tasks().set_index(EXT).loc[sorted(dropped), "IsDeleted"]
    assert deleted.astype(str).str.lower().eq("true").all()  # in the Recycle Bin
    assert org.reconciliation()["status"] == "ok"


def test_c_an_exclusion_added_and_the_hour_replanned_leaves_the_person_on_no_task(hourly_dag, org):
    assert run(hourly_dag).state == "success"
    plan = org.plan()
    others = plan.relations[~plan.relations["is_primary"]]["RelationId"]
    person = others[others.str.startswith("003")].value_counts().index[0]
    email = org.client.query(f"SELECT Email FROM Contact WHERE Id = '{person}'")["Email"][0]
    org.settings({**SETTINGS, "exclusions": [*SETTINGS["exclusions"], email]})

    assert run(hourly_dag, replan=True, max_delete_share=1.0).state == "success"
    tasks = org.live_tasks()
    assert person not in set(tasks["WhoId"])
    assert person not in set(salesforce_relations(org.client)["RelationId"])
    assert_salesforce_holds_exactly(org.client, [org.plan()])
    assert org.load_summary()["relations_deleted"] >= 1  # off the Tasks that stay


@pytest.mark.r14
def test_r14_people_a_replan_drops_from_a_kept_salesforce_event_leave_it_and_invitations_stay(
    hourly_dag, org_with_meetings
):
    """EventRelation (Object Reference): a person is related to an Event by a row with
    IsParent true and invited by one with IsInvitee true; one row can do both
    (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_eventrelation.htm).
    A re-plan deletes the rows of people it no longer relates, but an invitation someone
    made in Salesforce is not ours to remove: that row only stops relating."""
    org = org_with_meetings
    assert run(hourly_dag).state == "success"
    plan = org.plan()
    people = plan.event_relations[~plan.event_relations["is_primary"]]
    sizes = people.groupby("event_key").size()
    event = sizes[sizes >= 2].sort_values().index[0]
    dropped, invited = people[people["event_key"].eq(event)]["RelationId"].iloc[-2:]
    event_id = org.client.query(f"SELECT Id FROM Event WHERE {EXT} = '{event}'")["Id"][0]
    rows = org.client.query(
        f"SELECT Id, RelationId FROM EventRelation WHERE EventId = '{event_id}' AND IsWhat = false"
    ).set_index("RelationId")
    # Someone invites one of the people in Salesforce: our row now invites too.
    org.emulator.simple_salesforce().EventRelation.update(
        rows.loc[invited, "Id"], {"IsInvitee": True}
    )
    emails = org.client.query(f"SELECT Email FROM Contact WHERE Id IN ('{dropped}', '{invited}')")[
        "Email"
    ].tolist()
    org.settings({**SETTINGS, "exclusions": [*SETTINGS["exclusions"], *emails]})

    assert run(hourly_dag, replan=True, max_delete_share=1.0).state == "success"
    replanned = org.plan()
    assert event in set(replanned.salesforce_events["event_key"])  # the Event is kept
    after = org.client.query(
        f"SELECT RelationId, IsParent, IsInvitee FROM EventRelation WHERE EventId = "
        f"'{event_id}' AND IsWhat = false"
    ).set_index("RelationId")
    assert dropped not in after.index
    assert (bool(after.loc[invited, "IsParent"]), bool(after.loc[invited, "IsInvitee"])) == (
        False,
        True,
    )
    assert_salesforce_holds_exactly(org.client, [replanned])
    summary = org.load_summary()
    assert summary["relations_deleted"] >= 1 and summary["event_invitees_unrelated"] == 1
    assert org.reconciliation()["status"] == "ok"


@pytest.mark.r12
def test_d_fallback_hours_replanned_after_shared_activities_is_back_become_shared(hourly_dag, org):
    org.emulator.set_settings(shared_activities=False)
    assert run(hourly_dag).state == "success"
    fallback = org.plan()
    assert fallback.summary["fallback"] and (fallback.tasks["who_count"] == 1).all()
    org.emulator.set_settings(shared_activities=True)

    assert run(hourly_dag).state == "success"  # a plain re-run reproduces the fallback
    assert set(org.plan().tasks["task_key"]) == set(fallback.tasks["task_key"])

    assert run(hourly_dag, replan=True, max_delete_share=1.0).state == "success"
    shared = org.plan()
    assert not shared.summary["fallback"] and (shared.tasks["who_count"] > 1).any()
    assert_salesforce_holds_exactly(org.client, [shared])
    single = set(fallback.tasks["task_key"]) - set(shared.tasks["task_key"])
    assert single and not single & set(org.live_tasks()[EXT])


def test_e_an_event_delivered_again_three_hours_later_after_a_crm_change_is_one_set_of_tasks(
    hourly_dag, org
):
    assert run(hourly_dag).state == "success"
    first = org.plan()
    _change_the_crm(org, first)
    later = _deliver_again(org, hours=3)

    assert run(hourly_dag, hour=later).state == "success"
    redelivered = read_plan(lake.partition(org.lake, lake.PLAN, ORG, later))
    assert redelivered.summary["already_synced"] == first.summary["events"]
    assert not set(redelivered.tasks["event_id"]) & set(first.tasks["event_id"])
    assert_salesforce_holds_exactly(org.client, [first, redelivered])
    # Insights: a redelivered event is no new event; the audit counts it apart.
    headline = org.audit()["headline"]
    assert headline["events"] == first.summary["events"] + redelivered.summary["events"]
    assert headline["rejected_by_reason"]["already_synced"] == first.summary["events"]
    assert headline["reconciliation"] == "ok"


def test_e_an_event_delivered_again_and_replanned_in_a_later_hour_reconciles_clean(hourly_dag, org):
    """The later hour re-plans the events after a CRM change: it now owns them, and the
    Tasks the first hour's plan holds for them were deleted. The day's reconciliation
    reads the ledger, so those are superseded, not missing."""
    assert run(hourly_dag).state == "success"
    first = org.plan()
    _change_the_crm(org, first)
    later = _deliver_again(org, hours=3)

    assert run(hourly_dag, hour=later, replan=True, max_delete_share=1.0).state == "success"
    replanned = read_plan(lake.partition(org.lake, lake.PLAN, ORG, later))
    assert set(first.tasks["event_id"]) <= set(replanned.tasks["event_id"])
    gone = set(first.tasks["task_key"]) - set(replanned.tasks["task_key"])
    assert gone and not gone & set(org.live_tasks()[EXT])
    reconciliation = org.reconciliation()
    assert reconciliation["status"] == "ok", reconciliation["summary"]


def test_f_and_g_an_edited_task_is_kept_and_a_replan_over_the_cap_changes_nothing(hourly_dag, org):
    assert run(hourly_dag).state == "success"
    first = org.plan()
    # Every Contact to another Account: every Task's WhatId, so its key, changes.
    c = org.client
    accounts = c.query("SELECT Id FROM Account ORDER BY Id")["Id"].tolist()
    contacts = c.query("SELECT Id, AccountId FROM Contact WHERE AccountId != null")
    nxt = {a: accounts[(i + 1) % len(accounts)] for i, a in enumerate(accounts)}
    assert c.update_records(
        "Contact", contacts.assign(AccountId=contacts["AccountId"].map(nxt))
    ).failed.empty
    # A sales rep edits one of the loaded Tasks whose key the move changes.
    moved = first.tasks[first.tasks["WhoId"].isin(contacts["Id"])]["task_key"]
    live = org.live_tasks()
    edited = live[live[EXT].isin(moved)].iloc[0]
    rep = c.query("SELECT Id FROM User WHERE IsActive = true AND Email LIKE '%acme%' LIMIT 1")[
        "Id"
    ][0]
    as_rep = org.emulator.simple_salesforce(session_id=org.emulator.user_session(rep))
    as_rep.Task.update(edited["Id"], {"Description": "Called back, see notes"})
    before = org.live_tasks()

    # A dry run shows what the re-plan would create, update and delete, and the cap.
    assert run(hourly_dag, replan=True, dry_run=True).state == "success"
    preview = json.loads((org.part(lake.PLAN) / lake.PLAN_PREVIEW).read_text())
    assert preview["tasks_to_delete"] > 0 and preview["tasks_kept_edited"] == 1
    assert preview["tasks_to_create"] + preview["tasks_to_update"] == len(org.plan().tasks)
    assert "max_delete_share" in preview["over_delete_cap"]
    assert set(org.live_tasks()["Id"]) == set(before["Id"])

    # (g) Over the default cap (20%): nothing changes, the run fails saying how to confirm.
    assert run(hourly_dag, replan=True).state == "failed"
    error = org.outcome()["error"]
    assert error["step"] == "load" and not error["retryable"]
    assert "max_delete_share" in error["message"] and '"replan": true' in error["message"]
    assert set(org.live_tasks()["Id"]) == set(before["Id"])

    # (f) Confirmed: the rep's Task is kept and reported, every other old Task is deleted.
    assert run(hourly_dag, replan=True, max_delete_share=1.0).state == "success"
    replanned = org.plan()
    live = org.live_tasks()
    assert edited["Id"] in set(live["Id"])
    assert set(live[EXT]) == set(replanned.tasks["task_key"]) | {edited[EXT]}
    summary = org.load_summary()
    assert summary["tasks_kept_edited"] == 1
    dropped = set(first.tasks["task_key"]) - set(replanned.tasks["task_key"])
    assert edited[EXT] in dropped
    assert summary["tasks_deleted"] == len(dropped) - 1
    removals = pd.read_parquet(org.part(lake.LOADED) / lake.REMOVALS).set_index("task_id")
    assert removals.loc[edited["Id"], "outcome"] == "kept_edited"
    # The day's audit reports both. The kept Task is in Salesforce on purpose and the
    # ledger records it, so the reconciliation expects it: no plan holds it, yet it is
    # not extra.
    audit = org.audit()
    assert audit["headline"]["tasks_deleted"] == len(dropped) - 1
    assert audit["headline"]["tasks_kept_edited"] == 1
    assert audit["reconciliation"]["status"] == "ok"
    assert audit["reconciliation"]["tasks_expected"] == len(replanned.tasks) + 1
