"""docker-compose.yml and Dockerfile agree with each other and with the official Airflow 3.x topology.

No Docker engine runs here, so the files are parsed and their wiring is checked: a wrong image,
a missing mount or a broken dependency would otherwise only show on someone else's machine.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships without stubs

from airflow_cognito_iam.auth.settings import CognitoSettings

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
)
LONG_RUNNING = tuple(s for s in AIRFLOW_SERVICES if s != "airflow-init")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment must be a mapping so the anchors merge"
    return {k: str(v) for k, v in env.items()}


def _dependency(service: dict[str, Any], name: str) -> dict[str, Any]:
    depends = service.get("depends_on", {})
    assert isinstance(depends, dict), "depends_on must use conditions (long form)"
    assert name in depends, f"missing depends_on {name}"
    spec: dict[str, Any] = depends[name]
    return spec


def test_compose_has_the_official_airflow_3_topology(services: dict[str, dict[str, Any]]) -> None:
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis", "flower", "devstack"} <= set(services)
    commands = {name: services[name].get("command") for name in LONG_RUNNING}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-worker": "celery worker",
        "airflow-triggerer": "triggerer",
    }
    assert services["flower"]["profiles"] == ["flower"]
    assert services["devstack"]["profiles"] == ["devstack"]
    # Services without a profile are the default `docker compose up`: the devstack is opt-in.
    assert all("profiles" not in services[name] for name in AIRFLOW_SERVICES)


def test_every_airflow_service_uses_the_image_built_from_the_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    images = {services[name]["image"] for name in (*AIRFLOW_SERVICES, "flower", "devstack")}
    assert len(images) == 1, images
    for name in (*AIRFLOW_SERVICES, "devstack"):
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (ROOT / context / "Dockerfile").is_file(), name
    assert "apache/airflow" not in images.pop(), "the stock image lacks this provider"


def test_dockerfile_extends_airflow_3_3_2_and_installs_the_package_with_our_constraints(
    dockerfile: list[tuple[str, str]],
) -> None:
    froms = [args for keyword, args in dockerfile if keyword == "FROM"]
    assert len(froms) == 1
    assert froms[0].startswith("apache/airflow:3.3.2")
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    assert "apache-airflow==3.3.2" in constraints
    if "-python" in froms[0]:
        python = froms[0].split("-python")[1]
        assert re.fullmatch(r"3\.\d+", python)
        assert f'python_version = "{python}"' in (ROOT / "pyproject.toml").read_text()

    copied = " ".join(args for keyword, args in dockerfile if keyword == "COPY")
    for path in ("pyproject.toml", "constraints.txt", "README.md", "airflow_cognito_iam"):
        assert path in copied, f"{path} is needed to build the wheel"
        assert (ROOT / path).exists()
    runs = [shlex.split(args) for keyword, args in dockerfile if keyword == "RUN"]
    pip = next(cmd for cmd in runs if cmd[:2] == ["pip", "install"])
    assert "--constraint" in pip or "-c" in pip
    assert "apache-airflow==3.3.2" in pip, "pin Airflow so pip cannot replace the image's"
    assert any(arg.startswith("/opt/cognito-iam[") and "devstack" in arg for arg in pip)

    entrypoint = json.loads(next(args for keyword, args in dockerfile if keyword == "ENTRYPOINT"))
    assert entrypoint[:2] == ["/usr/bin/dumb-init", "--"]
    wrapper = entrypoint[2]
    assert wrapper.startswith("/opt/cognito-iam/scripts/")
    script = ROOT / "scripts" / Path(wrapper).name
    assert script.is_file()
    assert f"scripts/{script.name}" in copied
    assert "exec /entrypoint" in script.read_text(), "the official entrypoint must still run"


def test_airflow_services_share_the_official_core_settings(services: dict[str, dict[str, Any]]) -> None:
    for name in (*AIRFLOW_SERVICES, "flower"):
        env = _env(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"], name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:@redis:6379")
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
        assert env["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
        assert services[name]["user"].endswith(":0")
    assert services["airflow-init"]["user"] == "0:0"
    assert _env(services["airflow-worker"])["DUMB_INIT_SETSID"] == "0"


def test_connections_come_from_the_environment_not_the_file(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        for var in ("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", "AIRFLOW_CONN_AWS_DEFAULT"):
            assert env[var] == f"${{{var}:-}}", f"{name}: {var} must be passed through, never inlined"
        env_files = services[name]["env_file"]
        assert env_files == [{"path": "${ENV_FILE_PATH:-.env}", "required": False}]


def test_dags_folder_is_mounted_into_every_airflow_service(services: dict[str, dict[str, Any]]) -> None:
    assert any((ROOT / "dags").glob("*.py")), "the mounted folder holds the example DAGs"
    for name in (*AIRFLOW_SERVICES, "flower"):
        volumes = services[name]["volumes"]
        assert "${AIRFLOW_PROJ_DIR:-.}/dags:/opt/airflow/dags" in volumes, name
        assert "devstack-state:/opt/airflow/devstack:ro" in volumes, name


def test_healthchecks_back_every_service_condition(services: dict[str, dict[str, Any]]) -> None:
    assert services["airflow-apiserver"]["healthcheck"]["test"][-1].endswith("/api/v2/monitor/health")
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health"
            else:
                assert condition == "service_completed_successfully"
                assert dependency == "airflow-init"
        if name in LONG_RUNNING or name in ("postgres", "redis", "devstack"):
            assert "healthcheck" in service, name
    for name in LONG_RUNNING:
        assert _dependency(services[name], "airflow-init")["condition"] == "service_completed_successfully"
        assert _dependency(services[name], "postgres")["condition"] == "service_healthy"
        assert _dependency(services[name], "redis")["condition"] == "service_healthy"
    assert _dependency(services["airflow-worker"], "airflow-apiserver")["condition"] == "service_healthy"
    # Profile-only service: a hard dependency would force it on, or fail, in the real-AWS setup.
    for name in AIRFLOW_SERVICES:
        assert _dependency(services[name], "devstack") == {"condition": "service_healthy", "required": False}


def test_init_migrates_the_database_and_writes_the_login(services: dict[str, dict[str, Any]]) -> None:
    init = services["airflow-init"]
    env = _env(init)
    assert env["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["entrypoint"] == "/bin/bash"
    script = init["command"][-1]
    assert "/entrypoint airflow version" in script, "the official entrypoint runs db migrate before this"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] in script.replace("$${passwords}", "")
    assert "_AIRFLOW_WWW_USER_PASSWORD" in script


def test_devstack_service_runs_the_devstack_cli_and_publishes_connections(
    services: dict[str, dict[str, Any]],
) -> None:
    devstack = services["devstack"]
    assert devstack["entrypoint"] == ["python", "/opt/cognito-iam/scripts/compose_devstack.py"]
    command = devstack["command"]
    dash = command.index("--")
    wrapper_args, cli = command[:dash], command[dash + 1 :]
    assert cli[:4] == ["python", "-m", "airflow_cognito_iam.devstack", "up"]
    assert cli[cli.index("--host") + 1] == "0.0.0.0"
    ports = {cli[cli.index("--port-moto") + 1], cli[cli.index("--port-api") + 1]}
    assert {f"{port}:{port}" for port in ports} == set(devstack["ports"])
    assert wrapper_args[wrapper_args.index("--public-host") + 1] == "devstack"
    state_dir = wrapper_args[wrapper_args.index("--state-dir") + 1]
    assert f"devstack-state:{state_dir}" in devstack["volumes"]
    assert f"{state_dir}/AIRFLOW_CONN_COGNITO_IAM_DEFAULT" in devstack["healthcheck"]["test"][-1]


def test_published_devstack_connection_is_valid_from_another_container() -> None:
    """What compose_devstack.py writes must pass the provider's own validation on host `devstack`."""
    spec = importlib.util.spec_from_file_location("compose_devstack", ROOT / "scripts" / "compose_devstack.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    publish_connection = module.publish_connection

    conn: dict[str, Any] = {
        "conn_type": "cognito_iam",
        "host": "http://0.0.0.0:8081",
        "login": "etl-bot",
        "password": "pw",
        "extra": {
            "user_pool_id": "us-east-1_abc",
            "client_id": "client",
            "identity_pool_id": "us-east-1:0000-1111",
            "cognito_idp_endpoint_url": "http://127.0.0.1:4566",
            "cognito_identity_endpoint_url": "http://127.0.0.1:4566/",
        },
    }
    published = publish_connection(conn, "devstack")
    assert conn["extra"].get("allow_http") is None, "the input is not modified"
    settings = CognitoSettings.from_connection(
        host=published["host"],
        login=published["login"],
        password=published["password"],
        extra=published["extra"],
    )
    assert settings.api_host == "devstack:8081"
    assert settings.cognito_idp_endpoint_url == "http://devstack:4566"
    assert settings.cognito_identity_endpoint_url == "http://devstack:4566"
    assert settings.allow_http is True
    aws = publish_connection(
        {"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:4566", "region_name": "us-east-1"}},
        "devstack",
    )
    assert aws["extra"] == {"endpoint_url": "http://devstack:4566", "region_name": "us-east-1"}


def _default_of(value: str, var: str) -> str:
    """The fallback of a ``${VAR:-fallback}`` compose value."""
    match = re.fullmatch(rf"\$\{{{var}:-(.*)\}}", value)
    assert match, f"{var} must be ${{{var}:-default}} so .env can override it, got {value!r}"
    return match[1]


def test_credentials_are_cached_in_the_deployments_redis_by_default(services: dict[str, dict[str, Any]]) -> None:
    from airflow.sdk import Connection

    for name in (*AIRFLOW_SERVICES, "flower"):
        env = _env(services[name])
        mode = _default_of(env["AIRFLOW__COGNITO_IAM__CREDENTIAL_CACHE"], "COGNITO_IAM_CREDENTIAL_CACHE")
        assert mode == "redis", name
        uri = _default_of(env["AIRFLOW_CONN_REDIS_DEFAULT"], "AIRFLOW_CONN_REDIS_DEFAULT")
        conn = Connection.from_uri(uri, conn_id="redis_default")
        assert (conn.conn_type, conn.host, conn.port) == ("redis", "redis", 6379), name
        broker_db = int(env["AIRFLOW__CELERY__BROKER_URL"].rsplit("/", 1)[1])
        assert int(conn.extra_dejson["db"]) != broker_db, "the cache keeps out of the broker's database"
        assert env["AIRFLOW_COGNITO_IAM_CACHE_DIR"], "the file cache is the fallback while Redis is down"
    assert "redis" in services
    assert _dependency(services["airflow-worker"], "redis")["condition"] == "service_healthy"


def test_the_compose_cache_setting_is_the_one_the_hook_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """AIRFLOW__COGNITO_IAM__CREDENTIAL_CACHE applies to connections that choose no cache themselves."""
    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

    extra = {"user_pool_id": "eu-west-1_AbC123", "client_id": "client123"}
    monkeypatch.setenv("AIRFLOW__COGNITO_IAM__CREDENTIAL_CACHE", "redis")
    monkeypatch.setenv("AIRFLOW_CONN_PLAIN", json.dumps({"conn_type": "cognito_iam", "login": "u", "password": "p",
                                                         "extra": extra}))
    monkeypatch.setenv("AIRFLOW_CONN_OWN_CHOICE", json.dumps({"conn_type": "cognito_iam", "login": "u",
                                                              "password": "p",
                                                              "extra": {**extra, "credential_cache": "shared"}}))
    assert CognitoIamHook("plain").settings.credential_cache == "redis"
    assert CognitoIamHook("plain").settings.cache_conn_id == "redis_default"
    assert CognitoIamHook("own_choice").settings.credential_cache == "shared"
    monkeypatch.delenv("AIRFLOW__COGNITO_IAM__CREDENTIAL_CACHE")
    assert CognitoIamHook("plain").settings.credential_cache == "shared"
