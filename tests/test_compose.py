"""The Docker deployment (docker-compose.yaml, Dockerfile, .env.example) keeps its promises.

No Docker engine runs where the tests run, so the files are checked as data. Each check is
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

ROOT = Path(__file__).resolve().parents[1]
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


def not_celery(compose: dict[str, Any]) -> list[str]:
    return [
        name
        for name in AIRFLOW_SERVICES
        if _environment(compose["services"][name]).get("AIRFLOW__CORE__EXECUTOR")
        != "CeleryExecutor"
    ]


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
    assert not_celery(compose) == ["airflow-worker"]


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
    assert 'airflow pools set salesforce_api 4 "Salesforce API calls"' in script
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
