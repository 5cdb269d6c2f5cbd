"""The Docker deployment (docker-compose.yaml, Dockerfile, .env.example) keeps its promises.

No Docker engine runs where the tests run, so the files are checked as data; the settings
they share with ``scripts/stack.py --executor celery`` (deploy/airflow.env) are checked to
reach that stack as written, and tests/integration/test_stack_celery.py runs it. Each check is
a function that lists what is wrong. Every test runs it on the real files (nothing wrong)
and on a copy broken on purpose (the break is reported), so no check passes by being blind.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from stack_client import load_script

from activity_sync.airflow_adapter import (
    SALESFORCE_POOL,
    SALESFORCE_POOL_DESCRIPTION,
    SALESFORCE_POOL_SLOTS,
)

stack_script = load_script()
services = load_script("stack_services")

ROOT = Path(__file__).resolve().parents[2]
SHARED_SETTINGS = "deploy/airflow.env"
SHARED_TEXT = (ROOT / SHARED_SETTINGS).read_text(encoding="utf-8")
COMPOSE_TEXT = (ROOT / "docker-compose.yaml").read_text(encoding="utf-8")
DOCKERFILE_TEXT = (ROOT / "Dockerfile").read_text(encoding="utf-8")
ENV_EXAMPLE_TEXT = (ROOT / ".env.example").read_text(encoding="utf-8")
REQUIREMENTS_TEXT = (ROOT / "requirements.txt").read_text(encoding="utf-8")

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
)
REQUIRED_SERVICES = {"postgres", "redis", "salesforce-emulator", *AIRFLOW_SERVICES}
PROJECT_MOUNTS = ("dags", "plugins", "include", "logs", "config", "lake")

# A compose variable reference; "$${" is an escaped dollar, not a reference.
_REF = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$|^AIRFLOW_CONN_", re.IGNORECASE)
# The one secret with a default: the official file's local-only airflow:airflow database.
_DEFAULT_ALLOWED = {"POSTGRES_PASSWORD"}
_URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]+)@")


@pytest.fixture
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_TEXT)


def _resolve(value: str) -> str:
    """What compose makes of ``value`` with nothing set: defaults filled in, the rest empty."""
    return _REF.sub(lambda m: m["arg"] if m["op"] in (":-", "-") else "", value)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def missing_services(compose: dict[str, Any]) -> set[str]:
    return REQUIRED_SERVICES - set(compose["services"])


def unpinned_images(compose: dict[str, Any]) -> list[str]:
    """Services whose image has no exact version tag (``latest``, ``16``, ``7.2`` are not)."""
    problems = []
    for name, service in compose["services"].items():
        repository, _, tag = _resolve(service.get("image", "")).rpartition(":")
        parts = tag.split("-", 1)[0].split(".")
        # PostgreSQL versions are major.minor; everything else here is major.minor.patch.
        needed = 2 if repository == "postgres" else 3
        if (
            not repository
            or "/" in tag
            or len(parts) < needed
            or not all(p.isdigit() for p in parts)
        ):
            problems.append(f"{name}: {service.get('image')!r}")
    return problems


def off_the_project_image(compose: dict[str, Any]) -> list[str]:
    """Airflow services (and the emulator) not running the image built from ./Dockerfile."""
    common = compose["x-airflow-common"]
    problems = []
    for name in (*AIRFLOW_SERVICES, "salesforce-emulator"):
        service = compose["services"][name]
        if service.get("image") != common["image"] or service.get("build") != ".":
            problems.append(name)
    for name in AIRFLOW_SERVICES:
        env = _environment(compose["services"][name])
        if not _environment(common).items() <= env.items():
            problems.append(f"{name}: environment")
    return problems


def unmounted_folders(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name in AIRFLOW_SERVICES:
        mounts = {}
        for volume in compose["services"][name].get("volumes", []):
            source, target = _resolve(volume).split(":")[:2]
            mounts[target] = source
        problems += [
            f"{name}: ./{folder}"
            for folder in PROJECT_MOUNTS
            if mounts.get(f"/opt/airflow/{folder}") != f"./{folder}"
        ]
    return problems


def _env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file") or []
    files = [files] if isinstance(files, str | dict) else files
    return [str(Path(f["path"] if isinstance(f, dict) else f)) for f in files]


def _effective_environment(service: dict[str, Any]) -> dict[str, str]:
    """What a container gets: the shared settings if it reads them, then ``environment:``."""
    shared = services.shared_settings() if SHARED_SETTINGS in _env_files(service) else {}
    return shared | _environment(service)


def not_celery(compose: dict[str, Any]) -> list[str]:
    return [
        name
        for name in AIRFLOW_SERVICES
        if _effective_environment(compose["services"][name]).get("AIRFLOW__CORE__EXECUTOR")
        != "CeleryExecutor"
    ]


def not_reading_shared_settings(compose: dict[str, Any]) -> list[str]:
    """Airflow services that do not read deploy/airflow.env, the stack's settings too."""
    return [
        name
        for name in AIRFLOW_SERVICES
        if _env_files(compose["services"][name]) != [SHARED_SETTINGS]
    ]


def shared_settings_set_again(compose: dict[str, Any]) -> list[str]:
    """Shared settings that a service also sets under ``environment:``, which would win."""
    shared = services.shared_settings()
    places = {"x-airflow-common": compose["x-airflow-common"], **compose["services"]}
    return [
        f"{where}.{key}"
        for where, service in places.items()
        for key in _environment(service)
        if key in shared
    ]


def unplain_lines(text: str) -> list[str]:
    """Lines of the shared file that compose and stack.py could read differently.

    Compose strips quotes and expands ``${...}``; stack.py takes values as written.
    """
    plain = re.compile(r"[A-Z][A-Z0-9_]*=[^\s'\"$#]+")
    return [
        line
        for line in text.splitlines()
        if line.strip() and not line.startswith("#") and not plain.fullmatch(line)
    ]


def unapplied(shared: dict[str, str], settings: dict[str, str], *, but: set[str]) -> list[str]:
    """Shared settings (other than ``but``) that the stack's processes do not get as written."""
    return [key for key, value in shared.items() if key not in but and settings.get(key) != value]


def unchecked_backends(compose: dict[str, Any]) -> list[str]:
    """Postgres and Redis without a health check, or Airflow services not waiting for it."""
    probes = {"postgres": "pg_isready", "redis": "redis-cli ping"}
    problems = [
        name
        for name, probe in probes.items()
        if probe not in " ".join(compose["services"][name].get("healthcheck", {}).get("test", []))
    ]
    for name in AIRFLOW_SERVICES:
        depends = compose["services"][name].get("depends_on", {})
        problems += [
            f"{name} -> {backend}"
            for backend in probes
            if depends.get(backend, {}).get("condition") != "service_healthy"
        ]
    return problems


def plaintext_secrets(compose: dict[str, Any]) -> list[str]:
    """Secrets written into the file instead of referenced from the environment (.env)."""
    problems = []
    places = {"x-airflow-common": compose["x-airflow-common"], **compose["services"]}
    for where, service in places.items():
        for key, value in _environment(service).items():
            if _SECRET_NAME.search(key) and not key.endswith("_FILE") and _REF.sub("", value):
                problems.append(f"{where}.{key}: literal value")
            problems += [
                f"{where}.{key}: default for {m['name']}"
                for m in _REF.finditer(value)
                if _SECRET_NAME.search(m["name"])
                and m["op"] in (":-", "-")
                and m["name"] not in _DEFAULT_ALLOWED
            ]
    for text in _strings(compose):
        password = _URL_PASSWORD.search(_REF.sub("VAR", text))
        if password and password.group(1) != "VAR":
            problems.append(f"password in URL: {text}")
    return problems


def unshared_keys(compose: dict[str, Any]) -> list[str]:
    """Airflow services not taking the JWT secret and Fernet key from the required .env entry.

    Components that sign with different secrets reject each other's tokens.
    """
    problems = []
    for name in AIRFLOW_SERVICES:
        env = _environment(compose["services"][name])
        for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"):
            reference = _REF.fullmatch(env.get(key, ""))
            if not reference or reference["name"] != key or reference["op"] != ":?":
                problems.append(f"{name}: {key}")
    return problems


def required_variables(compose_text: str) -> set[str]:
    """Variables the compose file uses with no default: .env must provide them."""
    return {m["name"] for m in _REF.finditer(compose_text) if m["op"] not in (":-", "-")}


def env_file(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip().strip("'\"") for key, value in pairs}


def unplaceholdered(env: dict[str, str]) -> list[str]:
    """Secret-looking entries of .env.example holding anything but a CHANGE_ME placeholder."""
    return [
        key for key, value in env.items() if _SECRET_NAME.search(key) and "CHANGE_ME" not in value
    ]


def airflow_pin(requirements_text: str) -> str:
    return re.search(r"^apache-airflow==(\S+)$", requirements_text, re.MULTILINE).group(1)


def dockerfile_mismatches(dockerfile_text: str, pin: str) -> list[str]:
    problems = []
    base = re.search(r"^FROM\s+apache/airflow:(\S+)", dockerfile_text, re.MULTILINE)
    if not base or base.group(1) != f"{pin}-python3.11":
        problems.append(f"FROM {base.group(1) if base else None} is not {pin}-python3.11")
    install = re.search(r"^RUN pip install .*", dockerfile_text, re.MULTILINE)
    if (
        not install
        or f'"apache-airflow=={pin}"' not in install.group()
        or "-r " not in install.group()
    ):
        problems.append("pip install does not pin apache-airflow and install the lock")
    return problems


def test_every_required_service_is_defined(compose):
    assert missing_services(compose) == set()
    del compose["services"]["airflow-triggerer"]
    assert missing_services(compose) == {"airflow-triggerer"}


def test_every_image_is_pinned_to_an_exact_tag(compose):
    assert unpinned_images(compose) == []
    for floating in ("postgres:latest", "postgres:16", "postgres", "redis:7.2-bookworm"):
        broken = copy.deepcopy(compose)
        broken["services"]["postgres"]["image"] = floating
        assert unpinned_images(broken) == [f"postgres: {floating!r}"]


def test_airflow_services_and_the_emulator_run_the_project_image(compose):
    assert off_the_project_image(compose) == []
    compose["services"]["airflow-worker"]["image"] = "apache/airflow:3.3.2"
    del compose["services"]["salesforce-emulator"]["build"]
    compose["services"]["airflow-scheduler"]["environment"] = {"AIRFLOW__CORE__EXECUTOR": "x"}
    assert off_the_project_image(compose) == [
        "airflow-worker",
        "salesforce-emulator",
        "airflow-scheduler: environment",
    ]


def test_project_folders_and_the_lake_are_mounted_into_every_airflow_service(compose):
    assert unmounted_folders(compose) == []
    volumes = compose["services"]["airflow-init"]["volumes"]
    compose["services"]["airflow-init"]["volumes"] = [v for v in volumes if "/include:" not in v]
    assert unmounted_folders(compose) == ["airflow-init: ./include"]


def test_the_executor_is_celery_everywhere(compose):
    assert not_celery(compose) == []
    compose["services"]["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTOR"] = (
        "LocalExecutor"
    )
    del compose["services"]["airflow-triggerer"]["env_file"]
    assert not_celery(compose) == ["airflow-triggerer", "airflow-worker"]


def test_every_airflow_service_reads_the_shared_settings_file(compose):
    assert not_reading_shared_settings(compose) == []
    compose["services"]["airflow-worker"]["env_file"] = ["deploy/worker.env"]
    assert not_reading_shared_settings(compose) == ["airflow-worker"]


def test_no_service_sets_a_shared_setting_a_second_time(compose):
    assert shared_settings_set_again(compose) == []
    compose["services"]["airflow-worker"]["environment"]["AIRFLOW__CORE__PARALLELISM"] = "64"
    assert shared_settings_set_again(compose) == ["airflow-worker.AIRFLOW__CORE__PARALLELISM"]


def test_the_shared_settings_file_holds_plain_lines_both_readers_agree_on():
    assert unplain_lines(SHARED_TEXT) == []
    assert set(services.shared_settings()) >= {
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__CORE__PARALLELISM",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
    }
    broken = ["A=1 # why", "B='x'", "C=${D}", "E = 2"]
    assert unplain_lines("\n".join([SHARED_TEXT, *broken])) == broken


@pytest.mark.parametrize(
    ("executor", "swapped"),
    [
        ("celery", set()),
        # The quick stack swaps in its executor, and fewer workers than the file's slots.
        ("local", {"AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__PARALLELISM"}),
    ],
)
def test_the_stack_runs_the_shared_settings_as_written(executor, swapped, tmp_path, monkeypatch):
    shared = services.shared_settings()
    for key in shared:  # the caller's environment overrides the file, as in compose
        monkeypatch.delenv(key, raising=False)
    settings = stack_script.airflow_settings(
        stack_script.Layout(tmp_path),
        executor=executor,
        host="127.0.0.1",
        port=8080,
        log_ports=(8793, 8794),
        connections={},
        database="airflow:pw@127.0.0.1:5432/airflow",
        broker="redis://127.0.0.1:6379/0",
    )
    assert unapplied(shared, settings, but=swapped) == []
    assert unapplied({**shared, "AIRFLOW__CORE__NEW": "1"}, settings, but=swapped) == [
        "AIRFLOW__CORE__NEW"
    ]
    assert {key for key in swapped if settings[key] != shared[key]} == swapped


def test_postgres_and_redis_are_health_checked_and_waited_for(compose):
    assert unchecked_backends(compose) == []
    del compose["services"]["redis"]["healthcheck"]
    compose["services"]["airflow-triggerer"]["depends_on"]["postgres"] = {
        "condition": "service_started"
    }
    assert unchecked_backends(compose) == ["redis", "airflow-triggerer -> postgres"]


def test_no_secret_is_written_in_the_compose_file(compose):
    assert plaintext_secrets(compose) == []
    env = compose["services"]["airflow-worker"]["environment"]
    env["AIRFLOW__CORE__FERNET_KEY"] = "dGhpcyBpcyBub3QgYSByZWFsIGtleSBidXQgbG9va3M="
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = "${AIRFLOW__API_AUTH__JWT_SECRET:-s3cret}"
    env["AIRFLOW__CELERY__BROKER_URL"] = "redis://:hunter2@redis:6379/0"
    assert plaintext_secrets(compose) == [
        "airflow-worker.AIRFLOW__CORE__FERNET_KEY: literal value",
        "airflow-worker.AIRFLOW__API_AUTH__JWT_SECRET: default for AIRFLOW__API_AUTH__JWT_SECRET",
        "password in URL: redis://:hunter2@redis:6379/0",
    ]


def test_every_airflow_component_shares_the_jwt_secret_and_fernet_key_from_env(compose):
    assert unshared_keys(compose) == []
    compose["services"]["airflow-worker"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] = (
        "${WORKER_JWT_SECRET:?}"
    )
    assert unshared_keys(compose) == ["airflow-worker: AIRFLOW__API_AUTH__JWT_SECRET"]


def test_every_variable_without_a_default_is_listed_in_env_example():
    listed = set(env_file(ENV_EXAMPLE_TEXT))
    required = required_variables(COMPOSE_TEXT)
    assert {
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW_ADMIN_PASSWORD",
        "AIRFLOW_CONN_SALESFORCE_DEMO",
    } <= required
    assert required - listed == set()
    broken = COMPOSE_TEXT.replace("${AIRFLOW_PROJ_DIR:-.}/lake", "${LAKE_DIR}")
    assert required_variables(broken) - listed == {"LAKE_DIR"}
    assert "HOSTNAME" not in required_variables(COMPOSE_TEXT)


def test_env_example_holds_only_placeholders_for_secrets():
    env = env_file(ENV_EXAMPLE_TEXT)
    assert unplaceholdered(env) == []
    assert env["AIRFLOW_CONN_SALESFORCE_DEMO"].count("CHANGE_ME") == 3
    assert unplaceholdered({**env, "POSTGRES_PASSWORD": "airflow"}) == ["POSTGRES_PASSWORD"]


def test_the_dockerfile_builds_on_the_pinned_airflow_version():
    pin = airflow_pin(REQUIREMENTS_TEXT)
    assert pin == "3.3.2"
    assert dockerfile_mismatches(DOCKERFILE_TEXT, pin) == []
    assert dockerfile_mismatches(DOCKERFILE_TEXT, "3.3.3") == [
        "FROM 3.3.2-python3.11 is not 3.3.3-python3.11",
        "pip install does not pin apache-airflow and install the lock",
    ]


def test_the_build_context_holds_the_lock_the_dockerfile_copies():
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "COPY requirements.txt" in DOCKERFILE_TEXT
    assert ignore[ignore.index("*") :].count("!requirements.txt") == 1


def test_the_project_environment_points_at_the_mounted_lake_and_orgs_file(compose):
    env = _environment(compose["x-airflow-common"])
    assert env["PYTHONPATH"] == "/opt/airflow/include"
    assert env["ACTIVITY_SYNC_LAKE"] == "/opt/airflow/lake"
    orgs = env["ACTIVITY_SYNC_ORGS"]
    assert orgs.startswith("/opt/airflow/include/")
    assert (ROOT / "include" / orgs.removeprefix("/opt/airflow/include/")).is_file()


def test_airflow_init_migrates_and_creates_the_salesforce_api_pool(compose):
    init = compose["services"]["airflow-init"]
    script = init["command"][-1]
    pool = f'airflow pools set {SALESFORCE_POOL} {SALESFORCE_POOL_SLOTS} "{SALESFORCE_POOL_DESCRIPTION}"'
    assert pool in script
    assert _environment(init)["_AIRFLOW_DB_MIGRATE"] == "true"
    for name in set(AIRFLOW_SERVICES) - {"airflow-init"}:
        condition = compose["services"][name]["depends_on"]["airflow-init"]["condition"]
        assert condition == "service_completed_successfully"


def test_the_emulator_is_an_optional_profile_serving_the_demo_org(compose):
    emulator = compose["services"]["salesforce-emulator"]
    assert emulator["profiles"] == ["emulator"]
    assert emulator["command"] == (
        "python -m salesforce_emulator serve --port 8443 --host 0.0.0.0"
        " --cert-host salesforce-emulator --data-dir /opt/airflow/emulator --seed demo"
    )
    assert all("profiles" not in compose["services"][name] for name in AIRFLOW_SERVICES)


def test_a_real_env_file_is_never_committed():
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
