"""Authentication: Bearer tokens everywhere, OAuth2 grants, and Airflow's SalesforceHook."""

from __future__ import annotations

import json

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from salesforce_emulator.process import trusting_session


def _login_domain(emu) -> str:
    return emu.info.instance_url.removeprefix("https://") + "/services/oauth2/token#"


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic abc"])
def test_api_calls_without_a_valid_bearer_token_get_invalid_session_id(emulator, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for path in ("/services/data/v59.0/limits", "/services/data/v59.0/jobs/ingest"):
        response = emulator.session().get(emulator.info.instance_url + path, headers=headers)
        assert response.status_code == 401
        assert response.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]


def test_client_credentials_grant_logs_simple_salesforce_in(fresh_emulator):
    sf = Salesforce(
        consumer_key=fresh_emulator.info.client_id,
        consumer_secret=fresh_emulator.info.client_secret,
        domain=_login_domain(fresh_emulator),
        session=fresh_emulator.session(),
    )
    assert sf.auth_type == "client-credentials"
    assert sf.session_id != fresh_emulator.info.access_token
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 400


def test_password_grant_logs_simple_salesforce_in(fresh_emulator):
    sf = Salesforce(
        username=fresh_emulator.info.username,
        password=fresh_emulator.info.password,
        consumer_key=fresh_emulator.info.client_id,
        consumer_secret=fresh_emulator.info.client_secret,
        domain=_login_domain(fresh_emulator),
        session=fresh_emulator.session(),
    )
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 60


def test_wrong_client_secret_and_wrong_password_are_refused(emulator):
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid_client"):
        Salesforce(
            consumer_key=emulator.info.client_id,
            consumer_secret="wrong",
            domain=_login_domain(emulator),
            session=emulator.session(),
        )
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid_grant"):
        Salesforce(
            username=emulator.info.username,
            password="wrong",
            consumer_key=emulator.info.client_id,
            consumer_secret=emulator.info.client_secret,
            domain=_login_domain(emulator),
            session=emulator.session(),
        )


def test_token_response_has_salesforce_oauth_fields(emulator):
    response = emulator.session().post(
        f"{emulator.info.instance_url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emulator.info.client_id,
            "client_secret": emulator.info.client_secret,
        },
    )
    body = response.json()
    assert response.status_code == 200
    assert body["instance_url"] == emulator.info.instance_url and body["token_type"] == "Bearer"
    assert body["id"].endswith(f"/{emulator.info.org_id}/{emulator.info.user_id}")


def test_salesforce_hook_authenticates_from_the_airflow_connection_alone(
    fresh_emulator, monkeypatch
):
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    connection = fresh_emulator.airflow_connection()
    monkeypatch.setenv("AIRFLOW_CONN_SF_EMULATOR", json.dumps(connection))
    hook = SalesforceHook(
        salesforce_conn_id="sf_emulator",
        session=trusting_session(connection["extra"]["ca_bundle"]),
    )
    assert hook.test_connection() == (True, "Connection successfully tested")
    assert hook.get_conn().auth_type == "client-credentials"
    result = hook.make_query("SELECT Id, Email FROM Contact ORDER BY Id LIMIT 5")
    assert result["totalSize"] == 5
    frame = hook.object_to_df(result["records"])
    assert list(frame.columns) == ["id", "email"] and len(frame) == 5


def test_salesforce_hook_with_login_and_password_uses_the_password_grant(emulator, monkeypatch):
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    connection = emulator.airflow_connection()
    connection.update(login=emulator.info.username, password=emulator.info.password)
    monkeypatch.setenv("AIRFLOW_CONN_SF_EMULATOR_PW", json.dumps(connection))
    hook = SalesforceHook(
        salesforce_conn_id="sf_emulator_pw",
        session=trusting_session(connection["extra"]["ca_bundle"]),
    )
    assert hook.get_conn().auth_type == "password"
    assert hook.describe_object("Task")["name"] == "Task"


def test_a_token_names_the_instance_the_client_reached(fresh_emulator):
    info = fresh_emulator.info
    response = fresh_emulator.session().post(
        f"https://localhost:{info.port}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": info.client_id,
            "client_secret": info.client_secret,
        },
    )
    assert response.json()["instance_url"] == f"https://localhost:{info.port}"
