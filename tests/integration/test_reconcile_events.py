"""Reconciling Salesforce Events (R14) against the local Salesforce over HTTPS.

A plan of Salesforce Events is loaded with the product's loader, then Salesforce is
changed behind the plan's back: a deleted Event shows as missing, a relation removed as a
missing EventRelation, an Event with our key prefix that no plan holds as extra, and an
invitee the plan never related is not taken for a relation.
"""

from __future__ import annotations

import pandas as pd
import pytest
from event_plans import event_plan, seeded_people

from activity_sync.load import LoadOptions, load_plan
from activity_sync.reconcile import PlannedDay, reconcile
from activity_sync.salesforce import SalesforceClient
from activity_sync.schema import EVENT_KEY_PREFIX
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD as EXT


@pytest.fixture
def loaded(fresh_emulator):
    client = SalesforceClient(fresh_emulator.simple_salesforce, poll_wait=0.05, backoff=0.01)
    crm = seeded_people(client)
    plan = event_plan(crm, [[0, 1, 2], [3, 4]])
    result = load_plan(plan, client, LoadOptions(row_retry_wait=0))
    assert result.summary["dead_letter"] == 0

    def run() -> dict:
        return reconcile(
            client,
            plan.tasks,
            plan.relations,
            result.task_results,
            result.relation_results,
            lambda: set(plan.salesforce_events["event_key"]),
            salesforce_events=PlannedDay(
                plan.salesforce_events,
                plan.event_relations,
                result.event_results,
                result.event_relation_results,
            ),
        )

    ids = result.event_results.set_index("event_key")["Id"]
    return {"plan": plan, "client": client, "run": run, "ids": ids, "crm": crm}


def _differences(reconciliation: dict) -> list[tuple[str, str, str]]:
    return sorted((d["object"], d["kind"], d["cause"]) for d in reconciliation["differences"])


def test_r14_salesforce_events_as_loaded_reconcile_without_differences(loaded) -> None:
    result = loaded["run"]()
    assert result["status"] == "ok", result["differences"]
    expected = (result["salesforce_events_expected"], result["salesforce_events_found"])
    assert expected == (2, 2)
    assert (result["event_relations_expected"], result["event_relations_found"]) == (5, 5)


def test_r14_a_deleted_event_and_a_removed_relation_show_as_missing(loaded) -> None:
    sf = loaded["client"].sf
    plan, ids = loaded["plan"], loaded["ids"]
    first, second = plan.salesforce_events["event_key"]
    sf.Event.delete(ids[first])
    someone = plan.event_relations[
        plan.event_relations["event_key"].eq(second) & ~plan.event_relations["is_primary"]
    ]["RelationId"].iloc[0]
    row = sf.query(
        f"SELECT Id FROM EventRelation WHERE EventId = '{ids[second]}' AND RelationId = '{someone}'"
    )["records"][0]["Id"]
    sf.EventRelation.delete(row)
    result = loaded["run"]()
    assert result["counts"]["missing_salesforce_events"] == 1
    assert result["counts"]["missing_event_relations"] == 1
    assert _differences(result) == [
        ("Event", "missing", "deleted or changed in Salesforce after the load"),
        ("EventRelation", "missing", "removed in Salesforce after the load"),
    ]
    assert result["summary"] == "1 missing Salesforce Event, 1 missing EventRelation"


def test_r14_an_unplanned_event_with_our_prefix_is_extra_and_an_invitee_is_no_relation(
    loaded,
) -> None:
    sf, plan, ids = loaded["client"].sf, loaded["plan"], loaded["ids"]
    start = plan.salesforce_events["StartDateTime"].iloc[0]
    sf.Event.create(
        {
            EXT: EVENT_KEY_PREFIX + "f" * 32,
            "Subject": "Meeting: not ours",
            "StartDateTime": start,
            "DurationInMinutes": 15,
        }
    )
    # Someone invites a Contact to a loaded Event: an invitee, not a related person.
    stranger = loaded["crm"]["contacts"]["Id"].iloc[40]
    sf.EventRelation.create({"EventId": ids.iloc[0], "RelationId": stranger})
    result = loaded["run"]()
    assert _differences(result) == [("Event", "extra", "no plan holds this key")]
    extra = pd.DataFrame(result["differences"])
    assert extra["event_key"].tolist() == [EVENT_KEY_PREFIX + "f" * 32]
