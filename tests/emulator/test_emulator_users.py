"""The emulator stamps each write with the user whose session made it, as Salesforce does:
CreatedById and LastModifiedById are "the ID of the User who created / last modified this
record" (System Fields,
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/system_fields.htm).
A re-plan keeps Tasks another user edited after the load (issue 10), and tells them by it."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceError


def _rep(sf) -> str:
    rows = sf.query("SELECT Id FROM User WHERE IsActive = true AND Username != null")["records"]
    integration = sf.query(
        "SELECT Id FROM User WHERE Username = 'integration@activity-sync.emulator'"
    )["records"][0]["Id"]
    return next(r["Id"] for r in rows if r["Id"] != integration), integration


def test_an_edit_in_another_user_s_session_carries_that_user_as_last_modified_by(
    sf, fresh_emulator
):
    rep, integration = _rep(sf)
    task = sf.Task.create({"Subject": "Email: hello", "Status": "Completed"})["id"]
    created = sf.Task.get(task)
    assert created["CreatedById"] == created["LastModifiedById"] == integration

    as_rep = fresh_emulator.simple_salesforce(session_id=fresh_emulator.user_session(rep))
    as_rep.Task.update(task, {"Subject": "Email: hello (called back)"})
    edited = sf.Task.get(task)
    assert edited["LastModifiedById"] == rep and edited["CreatedById"] == integration
    assert edited["LastModifiedDate"] >= created["LastModifiedDate"]


def test_a_session_is_only_issued_for_an_active_user(fresh_emulator):
    with pytest.raises(RuntimeError, match="no active User"):
        fresh_emulator.user_session("005000000000000AAA")


def test_another_user_s_session_is_a_real_session_that_the_org_checks(sf, fresh_emulator):
    rep, _ = _rep(sf)
    as_rep = fresh_emulator.simple_salesforce(session_id=fresh_emulator.user_session(rep))
    assert as_rep.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
    bogus = fresh_emulator.simple_salesforce(session_id="00D!not-a-token")
    with pytest.raises(SalesforceError):
        bogus.query("SELECT Id FROM Account LIMIT 1")
