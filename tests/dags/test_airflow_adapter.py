"""airflow_adapter.py: a client from an Airflow connection alone, through the real SalesforceHook,
with the connection's timeouts; the lake root; errors that must not be retried."""

from __future__ import annotations

import json

import pytest

from activity_sync.airflow_adapter import (
    failing_without_retry,
    lake_root,
    object_path,
    salesforce_client,
)
from activity_sync.transport import HttpTimeouts, TimeoutSettingError, session_timeouts


def test_a_client_is_built_from_the_airflow_connection_and_trusts_its_ca(
    fresh_emulator, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_SF_TEST", json.dumps(fresh_emulator.airflow_connection()))
    monkeypatch.setenv("ACTIVITY_SYNC_BULK_POLL_SECONDS", "0.05")
    client = salesforce_client("sf_test")
    assert client.poll_wait == 0.05
    assert client.sf.session.trust_env is False
    assert client.sf.session.verify == fresh_emulator.info.ca_file
    assert not client.query("SELECT Id FROM User LIMIT 1").empty


def test_the_connections_timeouts_bound_every_request_of_the_session_the_hook_logs_in_with(
    fresh_emulator, monkeypatch
):
    connection = fresh_emulator.airflow_connection()
    connection["extra"].update(connect_timeout=3, read_timeout="7.5")
    monkeypatch.setenv("AIRFLOW_CONN_SF_TEST", json.dumps(connection))
    client = salesforce_client("sf_test")
    assert session_timeouts(client.sf.session) == HttpTimeouts(connect=3, read=7.5)


def test_without_timeout_extras_the_defaults_apply(fresh_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SF_TEST", json.dumps(fresh_emulator.airflow_connection()))
    assert session_timeouts(salesforce_client("sf_test").sf.session) == HttpTimeouts()


def test_a_bad_timeout_extra_fails_naming_the_connection_and_key(fresh_emulator, monkeypatch):
    connection = fresh_emulator.airflow_connection()
    connection["extra"]["connect_timeout"] = "never"
    monkeypatch.setenv("AIRFLOW_CONN_SF_TEST", json.dumps(connection))
    with pytest.raises(TimeoutSettingError, match="connection 'sf_test': connect_timeout"):
        salesforce_client("sf_test")


def test_a_fresh_login_each_time_the_factory_is_called(fresh_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SF_TEST", json.dumps(fresh_emulator.airflow_connection()))
    client = salesforce_client("sf_test")
    first = client.sf.session_id
    assert client._connect().session_id != first


def test_the_lake_root_comes_from_the_environment_as_an_object_storage_path(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIVITY_SYNC_LAKE", str(tmp_path))
    root = lake_root()
    assert root.protocol == "file"
    (root / "x" / "y.txt").parent.mkdir(parents=True, exist_ok=True)
    with (root / "x" / "y.txt").open("w") as fh:
        fh.write("ok")
    assert (tmp_path / "x" / "y.txt").read_text() == "ok"
    assert object_path("s3://bucket/lake").protocol == "s3"


def test_an_error_in_the_runs_params_fails_the_task_without_retries_and_others_pass_through():
    from airflow.sdk.exceptions import AirflowFailException

    class ParamsError(ValueError):
        pass

    with (
        pytest.raises(AirflowFailException, match="unknown org"),
        failing_without_retry(ParamsError),
    ):
        raise ParamsError("unknown org_id(s) in params.orgs: ['x']")
    with pytest.raises(KeyError), failing_without_retry(ParamsError):
        raise KeyError("a bug keeps its type, and Airflow's retries")
