"""Both DAGs in real Airflow: a mistake fails its task on the first try, naming the cause;
only passing failures are retried; every param explains itself and none is required."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import RetryAction

from activity_sync.airflow_adapter import retry_policy
from activity_sync.bulk import BulkJobFailed, BulkUploadFailed, JobTimeout
from activity_sync.crm import CrmError
from activity_sync.salesforce import SalesforceUnavailable
from activity_sync.settings import SettingsError
from activity_sync.steps import IntervalError, fails_at_once, resolve_interval
from activity_sync.tenants import TenantConfigError

ROOT = Path(__file__).resolve().parents[2]
H13 = datetime(2026, 11, 27, 13, tzinfo=UTC)
H14 = datetime(2026, 11, 27, 14, tzinfo=UTC)


@pytest.fixture(scope="module")
def dags() -> dict:
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags


# --------------------------------------------------------------------------- params


@pytest.mark.parametrize("dag_id", ["activity_sync_hourly", "activity_sync_audit"])
def test_every_param_has_a_title_and_a_description_and_none_is_required(dags, dag_id) -> None:
    params = dags[dag_id].params
    assert params
    for name in params:
        param = params.get_param(name)
        schema = param.schema
        assert schema.get("title"), (dag_id, name)
        assert len(param.description or "") > 20, (dag_id, name)
        # Airflow's form marks a field required unless its type admits null.
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert "null" in types, (dag_id, name)


def test_the_hourly_dag_reads_its_window_from_the_data_interval_not_from_params(dags) -> None:
    assert set(dags["activity_sync_hourly"].params) == {
        "orgs",
        "dry_run",
        "replan",
        "max_delete_share",
    }


def test_the_interval_is_the_runs_data_interval() -> None:
    assert resolve_interval(H13, H14, {}) == (H13, H14)


def test_an_old_interval_param_is_refused_not_ignored() -> None:
    conf = {"interval_start": "2026-11-26T05:00:00+00:00", "interval_end": "2026-11-26T06:00Z"}
    with pytest.raises(IntervalError, match="no longer read: give the run its data interval"):
        resolve_interval(H13, H14, conf)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (H13, H13 + timedelta(hours=2)),  # two hours in one partition
        (H13 + timedelta(minutes=30), H14 + timedelta(minutes=30)),  # not on the hour
        (
            datetime.fromisoformat("2026-11-27T13:30:00+05:30"),  # 08:00 UTC, but 1 h long
            datetime.fromisoformat("2026-11-27T14:00:00+05:30"),
        ),
    ],
)
def test_a_window_that_is_not_one_whole_utc_hour_is_refused(start, end) -> None:
    with pytest.raises(IntervalError, match="is not one whole UTC hour"):
        resolve_interval(start, end, {})


def test_a_whole_utc_hour_written_in_another_offset_is_accepted() -> None:
    start = datetime.fromisoformat("2026-11-27T18:30:00+05:30")  # 13:00 UTC
    assert resolve_interval(start, start + timedelta(hours=1), {})[0] == H13


# --------------------------------------------------------------------------- which errors


@pytest.mark.parametrize(
    ("error", "at_once"),
    [
        (TenantConfigError("org 'acme': unknown key 'colour'"), True),
        (SettingsError("settings key 'timezone' is not a known time zone"), True),
        (IntervalError("this run has no data interval"), True),
        (SalesforceUnavailable("503 after 5 attempts"), False),
        (BulkJobFailed("query", "750x", "Failed", "internal error"), False),
        (JobTimeout("Bulk ingest job 750x still InProgress after 3600s"), False),
        (KeyError("a bug keeps Airflow's retries"), False),
        (ConnectionError("reset by peer"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_only_mistakes_fail_at_once(error: BaseException, at_once: bool) -> None:
    assert fails_at_once(error) is at_once
    decision = retry_policy().evaluate(error, try_number=1, max_tries=4)
    assert decision.action == (RetryAction.FAIL if at_once else RetryAction.DEFAULT)
    if at_once:
        assert str(error) in decision.reason and "Fix the cause" in decision.reason


def test_a_mistake_caused_by_a_dropped_connection_is_retried() -> None:
    try:
        try:
            raise ConnectionError("s3 read reset")
        except ConnectionError as exc:
            raise CrmError("CRM object Contact: cannot read …: s3 read reset") from exc
    except CrmError as wrapped:
        assert fails_at_once(wrapped) is False
    assert fails_at_once(CrmError("CRM object Contact has no column 'Email'")) is True


def _raised(error: BaseException, cause: BaseException) -> BaseException:
    try:
        raise error from cause
    except BaseException as caught:
        return caught


def test_an_upload_refused_for_a_passing_reason_is_retried_and_for_a_lasting_one_is_not() -> None:
    import requests

    dropped = requests.exceptions.ChunkedEncodingError("connection cut mid-answer")
    assert fails_at_once(_raised(BulkUploadFailed("750x", dropped), dropped)) is False
    refused = ValueError("InvalidBatch: wrong column")
    assert fails_at_once(_raised(BulkUploadFailed("750x", refused), refused)) is True


def test_every_task_of_both_dags_carries_the_policy(dags) -> None:
    for dag in dags.values():
        for task in dag.tasks:
            assert task.retry_policy is not None, (dag.dag_id, task.task_id)


# --------------------------------------------------------------------------- real runs


@pytest.fixture
def hourly(airflow_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The hourly DAG as shipped (3 retries each), but with no delay between tries, so a
    retry would show as a second try at once instead of making the test wait."""
    monkeypatch.setenv("ACTIVITY_SYNC_LAKE", str(tmp_path / "lake"))
    bag = DagBag(dag_folder=str(ROOT / "dags" / "activity_sync_hourly.py"))
    dag = bag.dags["activity_sync_hourly"]
    for task in dag.tasks:
        task.retry_delay = timedelta(0)
        task.max_retry_delay = timedelta(0)
    assert dag.get_task("select_orgs").retries == 3
    return dag


def _tries(run) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}


def test_an_unknown_key_in_orgs_yaml_fails_on_the_first_try_naming_it(
    hourly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    orgs = tmp_path / "orgs.yaml"
    orgs.write_text(
        "version: 1\norgs:\n  - org_id: acme\n    salesforce_conn_id: c\n    colour: x\n"
    )
    monkeypatch.setenv("ACTIVITY_SYNC_ORGS", str(orgs))
    run = hourly.test(logical_date=H14, run_conf={"dry_run": True})
    assert run.state == "failed"
    assert _tries(run)["select_orgs"] == ("failed", 1)
    out = capfd.readouterr()
    log = out.out + out.err
    assert "TenantConfigError: org 'acme': unknown key 'colour'" in log
    assert "will not heal by retrying" in log
    # The run's closing task names the task that failed and why.
    assert _tries(run)["summary"] == ("failed", 1)
    assert (
        "the run did not get as far as its orgs: task select_orgs failed: "
        "TenantConfigError: org 'acme': unknown key 'colour'"
    ) in log


def test_a_manual_run_without_a_data_interval_fails_on_the_first_try_saying_what_to_do(
    hourly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    orgs = tmp_path / "orgs.yaml"
    orgs.write_text("version: 1\norgs:\n  - org_id: acme\n    salesforce_conn_id: c\n")
    monkeypatch.setenv("ACTIVITY_SYNC_ORGS", str(orgs))
    run = hourly.test(logical_date=None, run_conf={"dry_run": True})
    assert run.state == "failed"
    assert _tries(run)["window"] == ("failed", 1)
    assert _tries(run)["select_orgs"] == ("success", 1)
    assert _tries(run)["summary"] == ("failed", 1)
    out = capfd.readouterr()
    log = out.out + out.err
    assert "this run has no data interval (a manual run without a logical date)" in log
    assert (
        "the run did not get as far as its orgs: task window failed: IntervalError: this run "
        "has no data interval"
    ) in log
    assert "select_orgs failed" not in log
