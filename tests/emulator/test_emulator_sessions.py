"""An expired session stays expired until the client logs in again.

Page imitated: SOAP API "Error Handling": "When your session expires, the exception code
INVALID_SESSION_ID is returned. If this code is returned, you must invoke the login() call
again." https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_concepts_errorhandling.htm
The REST answer is 401 ``INVALID_SESSION_ID`` "Session expired or invalid".
"""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession

LIMITS = "/services/data/v59.0/limits"


def _login(emu) -> str:
    answer = emu.session().post(
        f"{emu.info.instance_url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emu.info.client_id,
            "client_secret": emu.info.client_secret,
        },
    )
    assert answer.status_code == 200
    return answer.json()["access_token"]


def _status(emu, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return emu.session().get(emu.info.instance_url + LIMITS, headers=headers).status_code


def test_a_session_the_fault_expires_stays_expired_until_a_new_login(fresh_emulator):
    token = _login(fresh_emulator)
    fresh_emulator.set_faults(expired_session_rate=1.0)
    assert _status(fresh_emulator, token) == 401
    fresh_emulator.set_faults()
    assert _status(fresh_emulator, token) == 401, "the expired session answered again"
    assert _status(fresh_emulator, _login(fresh_emulator)) == 200
    assert fresh_emulator.stats()["auth"] == {"logins": 2, "expired_sessions": 1}


def test_expiring_every_session_ends_the_standing_token_until_a_reset(sf, fresh_emulator):
    assert fresh_emulator.expire_sessions() >= 1
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.query("SELECT COUNT() FROM Contact")
    assert caught.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
    assert fresh_emulator.stats()["rows"]["Contact"]["live"] == 400, "the controls still work"
    fresh_emulator.reset()
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 400


def test_a_client_that_logs_in_recovers_from_an_expired_session_with_one_login(fresh_emulator):
    host = fresh_emulator.info.instance_url.removeprefix("https://")
    sf = Salesforce(
        consumer_key=fresh_emulator.info.client_id,
        consumer_secret=fresh_emulator.info.client_secret,
        domain=f"{host}/services/oauth2/token#",
        session=fresh_emulator.session(),
    )
    first = sf.session_id
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 40
    fresh_emulator.expire_sessions()
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 40
    assert sf.session_id != first
    assert fresh_emulator.stats()["auth"]["logins"] == 2
