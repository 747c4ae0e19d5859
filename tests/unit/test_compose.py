"""compose.yml cannot run here (no Docker engine); check what can be checked of it.

Its gRPC healthchecks are run for real: the command compose would run, against a daemon server
started here (on a free port instead of the container's).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledger.cli.serve import DaemonName
from ledger.config import Settings
from ledger.daemons.supervisor import DAEMON_ORDER, GRPC_DAEMONS

ROOT = Path(__file__).resolve().parents[2]
LEDGER_SERVICES = (*DAEMON_ORDER, "writer")
#: What each service runs: ingest is split into the gateway-facing api and the queue writer.
COMMANDS = {name: ["ledger", "serve", name] for name in DAEMON_ORDER} | {
    "ingest": ["ledger", "serve", "ingest", "--role", "api"],
    "writer": ["ledger", "serve", "ingest", "--role", "writer"],
}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _env_settings(service: dict[str, Any]) -> Settings:
    values = {k: re.sub(r"\$\{[^}]*\}", "x", str(v)) for k, v in service["environment"].items()}
    return Settings.from_env(values)


def test_each_daemon_is_one_service_running_ledger_serve() -> None:
    services = _compose()["services"]
    for name in LEDGER_SERVICES:
        command = services[name]["command"]
        assert command == COMMANDS[name], name
        assert DaemonName(command[2])  # a daemon `ledger serve` knows


def test_only_the_gateway_publishes_a_port() -> None:
    services = _compose()["services"]
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"gateway"}
    assert services["gateway"]["ports"] == ["8000:8000"]


def test_redis_never_evicts_the_queue_and_keeps_it() -> None:
    redis = _compose()["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert redis["volumes"] == ["redis:/data"]


def test_every_ledger_variable_in_compose_is_valid() -> None:
    services = _compose()["services"]
    for name in (*LEDGER_SERVICES, "migrate"):
        settings = _env_settings(services[name])
        assert settings.unknown == (), name
        assert settings.gateway_listen == "0.0.0.0:8000"
        for daemon in GRPC_DAEMONS:  # each daemon reachable by its service name
            assert getattr(settings, f"{daemon}_addr").startswith(f"{daemon}:")


def test_two_postgres_servers_and_migrations_before_daemons() -> None:
    services = _compose()["services"]
    assert services["auth-db"]["image"].startswith("postgres")
    assert services["logs-db"]["image"].startswith("postgres")
    migrate = services["migrate"]
    assert migrate["command"] == ["ledger", "db", "migrate"]
    assert migrate["restart"] == "no"  # one-shot
    assert {dep: c["condition"] for dep, c in migrate["depends_on"].items()} \
        == {"auth-db": "service_healthy", "logs-db": "service_healthy"}
    for name in LEDGER_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_the_gateway_starts_once_the_grpc_daemons_are_healthy() -> None:
    services = _compose()["services"]
    depends = services["gateway"]["depends_on"]
    for daemon in GRPC_DAEMONS:
        assert depends[daemon]["condition"] == "service_healthy"
        assert "healthcheck" in services[daemon]


def test_every_database_and_redis_keeps_its_data_in_a_named_volume() -> None:
    compose = _compose()
    for name, path in (("auth-db", "/var/lib/postgresql/data"),
                       ("logs-db", "/var/lib/postgresql/data"), ("redis", "/data")):
        assert compose["services"][name]["volumes"] == [f"{name}:{path}"]
        assert name in compose["volumes"]
        assert "healthcheck" in compose["services"][name]


def test_env_example_names_every_variable_compose_needs_and_no_secret() -> None:
    text = (ROOT / "compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            example[key] = value
    assert set(example) == required
    # Empty on purpose: compose's ${VAR:?} then refuses to start until a real value is set.
    assert all(value == "" for value in example.values()), example


def test_gateway_healthcheck_asks_the_health_route() -> None:
    from ledger.daemons.gateway.routes.health import router

    test = " ".join(_compose()["services"]["gateway"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/health'" in test
    assert "/health" in {getattr(route, "path", None) for route in router.routes}


@pytest.mark.parametrize("daemon", GRPC_DAEMONS)
async def test_grpc_healthcheck_command_passes_against_a_real_daemon_server(
        daemon: str) -> None:
    from ledger.rpc.server import bind, create_server

    service = _compose()["services"][daemon]
    command = service["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    port = getattr(_env_settings(service), f"{daemon}_listen").rsplit(":", 1)[1]
    assert f"'127.0.0.1:{port}'" in command[3]  # it probes the port the daemon listens on

    async def checks() -> dict[str, str]:
        return {"postgres": "ok"}

    server = create_server(daemon, "compose-test-token", checks)
    local = bind(server, "127.0.0.1:0", daemon)
    await server.start()
    try:
        script = command[3].replace(f"127.0.0.1:{port}", f"127.0.0.1:{local}")
        done = await _run(script)
        assert done.returncode == 0, done.stderr
    finally:
        await server.stop(None)
    stopped = await _run(script)
    assert stopped.returncode != 0  # nothing listening: the check fails


async def _run(script: str) -> subprocess.CompletedProcess[str]:
    import asyncio

    return await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script],
                                   capture_output=True, text=True, timeout=30)


def test_writers_are_a_service_of_their_own_and_ingest_only_accepts() -> None:
    services = _compose()["services"]
    assert services["writer"]["command"] == ["ledger", "serve", "ingest", "--role", "writer"]
    assert services["writer"]["deploy"]["replicas"] >= 2
    assert services["ingest"]["command"] == ["ledger", "serve", "ingest", "--role", "api"]
    assert Settings.from_env({"LEDGER_INGEST_ROLE": "api"}).ingest_role == "api"
    assert "ports" not in services["writer"]
    # Its health-only port (LEDGER_INGEST_LISTEN) is what its healthcheck asks.
    port = _env_settings(services["writer"]).ingest_listen.rsplit(":", 1)[1]
    assert f"'127.0.0.1:{port}'" in services["writer"]["healthcheck"]["test"][3]
    assert services["writer"]["healthcheck"]["test"] == services["ingest"]["healthcheck"]["test"]
