"""deploy/compose.yaml: valid for Compose (docker-compose 1.29 and the Compose Specification
schema), and wired the way the services read their settings: every variable it sets is one
the code reads, every service reaches its own database, the registry names every callee."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from chassis.discovery import StaticRegistry, parse_static_spec, registry_from_url

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
INIT_SCRIPT = DEPLOY / "compose" / "postgres" / "init-databases.sh"


def _interpolate(value: Any) -> Any:
    """Compose's `${VAR:-default}` with nothing set: the default."""
    if isinstance(value, str):
        return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())  # PyYAML applies the `<<` merges
    return _interpolate(document)


def test_compose_spec_schema(tool: Any, run: Any) -> None:
    run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))


def test_docker_compose_config(run: Any) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose, 1.29)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    run(binary, "-f", str(COMPOSE), "config", "-q", env=env)
    # The RabbitMQ profile is valid too.
    run(binary, "-f", str(COMPOSE), "--profile", "rabbitmq", "config", "-q", env=env)


def test_the_platform_is_complete(compose: dict[str, Any], topology: ModuleType) -> None:
    services = set(compose["services"])
    assert set(topology.SERVICES) <= services
    infrastructure = {
        "postgres",
        "nats",
        "rabbitmq",
        "otel-collector",
        "jaeger",
        "prometheus",
        "grafana",
        "loki",
        "fluent-bit",
    }
    assert infrastructure <= services
    assert compose["services"]["rabbitmq"]["profiles"] == ["rabbitmq"]
    assert "-js" in compose["services"]["nats"]["command"]


def test_service_wiring(
    service: str,
    compose: dict[str, Any],
    topology: ModuleType,
    accepted_variables: Any,
    settings_class: Any,
    settings_env: Any,
) -> None:
    spec = topology.SERVICES[service]
    definition = compose["services"][service]
    assert definition["build"] == {"context": "..", "dockerfile": f"services/{service}/Dockerfile"}
    env = {key: str(value) for key, value in definition["environment"].items()}
    unknown = set(env) - accepted_variables(service)
    assert not unknown, f"{service} does not read {unknown}"

    settings_env(env)
    settings = settings_class(service)()
    if spec.database:
        url = urlsplit(settings.database_url)
        assert url.scheme == "postgresql+asyncpg"
        assert (url.hostname, url.port) == ("postgres", 5432)
        assert url.path == f"/{service}"
        assert url.username == service  # its own role, which only its database admits
    if spec.broker:
        assert urlsplit(settings.broker_url).hostname == "nats"
        assert definition["depends_on"]["nats"]["condition"] == "service_healthy"
    else:
        assert "nats" not in definition["depends_on"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"

    # Every service it calls is in the registry, at the port that service listens on.
    assert isinstance(registry_from_url(settings.registry_url), StaticRegistry)
    spec_text = settings.registry_url.removeprefix("static:")
    instances = {i.service: (i.host, i.port) for i in parse_static_spec(spec_text)}
    for callee in spec.calls:
        assert instances[callee] == (callee, topology.SERVICES[callee].port)
        assert callee in compose["services"]

    # Hardened like on Kubernetes, logs to the pipeline.
    assert definition["read_only"] is True
    assert {t.split(":")[0] for t in definition["tmpfs"]} == {"/tmp", "/var/lib/mercato"}
    assert definition["cap_drop"] == ["ALL"]
    assert definition["logging"]["driver"] == "fluentd"
    assert "ports" not in definition or service == "gateway"


def test_only_loopback_ports_are_published(compose: dict[str, Any]) -> None:
    for name, definition in compose["services"].items():
        for port in definition.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_every_database_service_gets_a_database(topology: ModuleType) -> None:
    match = re.search(r"for service in ([a-z ]+); do", INIT_SCRIPT.read_text())
    assert match is not None
    databases = {s.name for s in topology.SERVICES.values() if s.database}
    assert set(match.group(1).split()) == databases


def test_mounted_configuration_exists(compose: dict[str, Any]) -> None:
    mounted = [
        volume.split(":")[0]
        for definition in compose["services"].values()
        for volume in definition.get("volumes", [])
        if volume.startswith("./")
    ]
    assert "./prometheus/prometheus-compose.yml" in mounted
    assert "./grafana/dashboards" in mounted
    for source in mounted:
        assert (DEPLOY / source).exists(), source


def test_grafana_finds_what_compose_mounts(compose: dict[str, Any]) -> None:
    volumes = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    provisioning = DEPLOY / "grafana" / "provisioning"
    providers = list((provisioning / "dashboards").glob("*.yml"))
    assert providers
    for provider in providers:
        for entry in yaml.safe_load(provider.read_text())["providers"]:
            assert volumes["./grafana/dashboards"] == entry["options"]["path"]
    for source in (provisioning / "datasources").glob("*.yml"):
        for datasource in yaml.safe_load(source.read_text())["datasources"]:
            host = urlsplit(datasource["url"]).hostname
            assert host in compose["services"], datasource["url"]


def test_collector_pipeline(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "otel" / "collector.yaml").read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) <= set(config[kind]), kind
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert http.endswith(":4318")  # where OTEL_EXPORTER_OTLP_ENDPOINT points
    jaeger = config["exporters"]["otlp/jaeger"]["endpoint"].split(":")[0]
    assert jaeger in compose["services"]
    assert compose["services"]["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"


def test_log_pipeline(compose: dict[str, Any]) -> None:
    conf = (DEPLOY / "compose" / "fluent-bit" / "fluent-bit.conf").read_text()
    forward_port = re.search(r"Name\s+forward\s+Listen\s+\S+\s+Port\s+(\d+)", conf)
    assert forward_port is not None
    loki_host = re.search(r"Name\s+loki\s+Match\s+\S+\s+Host\s+(\S+)\s+Port\s+(\d+)", conf)
    assert loki_host is not None
    assert loki_host.group(1) in compose["services"]
    assert loki_host.group(2) == "3100"
    for name in ("catalog", "gateway", "postgres", "nats"):
        options = compose["services"][name]["logging"]["options"]
        assert options["fluentd-address"] == f"127.0.0.1:{forward_port.group(1)}"


# --- the database init script, run for real on a throw-away PostgreSQL --------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def scratch_postgres() -> Iterator[dict[str, str]]:
    """A PostgreSQL server of its own (initdb + pg_ctl as the postgres user), stopped after."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins or os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)")
    bindir = bins[-1].parent
    # Not pytest's tmp_path: its parents are closed to the postgres user.
    tmp_path = Path(tempfile.mkdtemp(prefix="mercato-deploy-pg-"))
    tmp_path.chmod(0o755)
    data, sockets = tmp_path / "data", tmp_path / "sockets"
    sockets.mkdir()
    shutil.chown(sockets, "postgres")
    port = str(_free_port())

    def as_postgres(*args: str) -> None:
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{args[0]}: {result.stdout}{result.stderr}"

    data.mkdir()
    shutil.chown(data, "postgres")
    pwfile = tmp_path / "pw"
    pwfile.write_text("superuser-secret\n")
    shutil.chown(pwfile, "postgres")
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}"]
    as_postgres(*initdb, "--auth-local=scram-sha-256", "--auth-host=scram-sha-256")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
    log = str(sockets / "server.log")
    as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", log, "-o", options, "start")
    try:
        yield {"PGHOST": str(sockets), "PGPORT": port}
    finally:
        as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(tmp_path)


def _connect(
    server: dict[str, str], user: str, password: str, database: str
) -> subprocess.CompletedProcess[str]:
    query = ["-tA", "-c", "select current_database()"]
    return subprocess.run(
        ["psql", "--no-psqlrc", "-h", "127.0.0.1", "-U", user, "-d", database, *query],
        env={**os.environ, **server, "PGPASSWORD": password},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.integration
def test_init_script_isolates_the_databases(scratch_postgres: dict[str, str]) -> None:
    env = {
        **os.environ,
        **scratch_postgres,
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "role-secret",
        "PGPASSWORD": "superuser-secret",
    }
    subprocess.run(["sh", str(INIT_SCRIPT)], env=env, check=True, capture_output=True, timeout=60)
    own = _connect(scratch_postgres, "catalog", "role-secret", "catalog")
    assert own.returncode == 0, own.stderr
    assert own.stdout.strip() == "catalog"
    other = _connect(scratch_postgres, "catalog", "role-secret", "orders")
    assert other.returncode != 0
    assert "permission denied for database" in other.stderr
