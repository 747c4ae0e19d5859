"""compose.yml cannot run here (no Docker engine); check what can be checked of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ledger.config import Settings
from ledger.daemons.supervisor import DAEMON_ORDER

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_each_daemon_is_one_service_running_ledger_serve() -> None:
    services = _compose()["services"]
    for name in DAEMON_ORDER:
        assert services[name]["command"] == ["ledger", "serve", name]


def test_only_the_gateway_publishes_a_port() -> None:
    services = _compose()["services"]
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"gateway"}


def test_redis_never_evicts_the_queue_and_keeps_it() -> None:
    command = _compose()["services"]["redis"]["command"]
    assert "noeviction" in command
    assert command[command.index("--appendonly") + 1] == "yes"


def test_every_ledger_variable_in_compose_is_valid() -> None:
    env = _compose()["services"]["gateway"]["environment"]
    values = {k: ("x" if str(v).startswith("${") else str(v)) for k, v in env.items()}
    settings = Settings.from_env(values)
    assert settings.unknown == ()
    assert settings.gateway_listen == "0.0.0.0:8000"


def test_two_postgres_servers_and_migrations_before_daemons() -> None:
    services = _compose()["services"]
    assert services["auth-db"]["image"].startswith("postgres")
    assert services["logs-db"]["image"].startswith("postgres")
    assert services["migrate"]["command"] == ["ledger", "db", "migrate"]
    assert services["ingest"]["depends_on"]["migrate"]["condition"] \
        == "service_completed_successfully"


def test_writers_are_a_service_of_their_own_and_ingest_only_accepts() -> None:
    services = _compose()["services"]
    assert services["writer"]["command"] == ["ledger", "serve", "ingest", "--role", "writer"]
    assert services["writer"]["deploy"]["replicas"] >= 2
    assert services["ingest"]["environment"]["LEDGER_INGEST_ROLE"] == "api"
    assert Settings.from_env({"LEDGER_INGEST_ROLE": "api"}).ingest_role == "api"
    assert "ports" not in services["writer"]
