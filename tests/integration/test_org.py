"""org.py against the emulator: what the org allows right now (R1, R12) and the API budget."""

from __future__ import annotations

import pytest

from activity_sync.errors import ActivitySyncError
from activity_sync.org import ApiBudget, OrgSetupError, api_budget, detect_capabilities
from activity_sync.salesforce import SalesforceClient
from activity_sync.tenants import DEFAULT_EXTERNAL_ID_FIELD as EXT


@pytest.fixture
def client(fresh_emulator) -> SalesforceClient:
    return SalesforceClient(fresh_emulator.simple_salesforce, poll_wait=0.02)


def test_r12_shared_activities_is_detected_from_the_task_describe(client, fresh_emulator):
    assert detect_capabilities(client, EXT).shared_activities is True
    fresh_emulator.set_settings(shared_activities=False)
    assert detect_capabilities(client, EXT).shared_activities is False
    assert client.calls["describe"] == 2  # one call per detection


def test_the_external_id_field_is_found_whatever_its_case(client):
    assert detect_capabilities(client, EXT.lower()).external_id_field == EXT


def test_a_missing_external_id_field_says_how_to_create_it(client, fresh_emulator):
    fresh_emulator.set_settings(task_external_id_field=False)
    with pytest.raises(OrgSetupError) as err:
        detect_capabilities(client, EXT)
    message = str(err.value)
    assert f"Task field {EXT} does not exist" in message
    assert "External ID" in message and "Unique" in message
    assert isinstance(err.value, ActivitySyncError)


def test_a_field_that_is_not_an_external_id_is_refused(client):
    with pytest.raises(OrgSetupError, match="Subject is not marked External ID"):
        detect_capabilities(client, "Subject")


def test_the_budget_reads_the_orgs_daily_allowance(client, fresh_emulator):
    fresh_emulator.set_settings(api_limit=1_000)
    budget = api_budget(client, share=0.7)
    assert budget.limit == 1_000
    assert 0 < budget.used < 700
    assert not budget.exhausted


def test_the_budget_is_exhausted_at_this_products_share_not_at_the_orgs_limit(
    client, fresh_emulator
):
    fresh_emulator.set_settings(api_limit=20)
    for _ in range(14):
        client.limits()
    budget = api_budget(client, share=0.7)
    assert budget.used >= 14
    assert budget.exhausted
    assert "this product may use 70% (14)" in budget.describe()


def test_the_allowance_is_a_share_of_the_limit_rounded_down():
    assert ApiBudget(used=0, limit=15_000, share=0.7).allowance == 10_500
    assert ApiBudget(used=10_500, limit=15_000, share=0.7).exhausted
    assert not ApiBudget(used=10_499, limit=15_000, share=0.7).exhausted
