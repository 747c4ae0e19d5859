"""Settings: every LEDGER_* variable parsed strictly, with a message naming the bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.config import VARIABLES, Secret, Settings, masked
from ledger.errors import ConfigError


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.gateway_listen == "127.0.0.1:8000"
    assert settings.queue_max_depth == 100_000
    assert settings.ingest_writers == 2
    assert settings.data_dir == Path(".ledger")
    assert settings.auth_database_url is None
    assert settings.unknown == ()


def test_values_are_parsed() -> None:
    settings = Settings.from_env({
        "LEDGER_INGEST_WRITERS": "4",
        "LEDGER_INGEST_QUEUE_MAX_DEPTH": "1_000",
        "LEDGER_GATEWAY_LISTEN": ":9000",
        "LEDGER_LOGS_DATABASE_URL": "postgresql://u:pw@db:5432/logs",
        "LEDGER_REDIS_URL": "redis://cache:6379/0",
        "LEDGER_LOG_LEVEL": "DEBUG",
    })
    assert settings.ingest_writers == 4
    assert settings.queue_max_depth == 1000
    assert settings.gateway_listen == "0.0.0.0:9000"
    assert settings.log_level == "debug"
    assert settings.redis_url == "redis://cache:6379/0"


def test_short_alias_from_design_is_accepted_and_long_name_wins() -> None:
    assert Settings.from_env({"LEDGER_QUEUE_MAX_DEPTH": "5"}).queue_max_depth == 5
    both = {"LEDGER_QUEUE_MAX_DEPTH": "5", "LEDGER_INGEST_QUEUE_MAX_DEPTH": "7"}
    assert Settings.from_env(both).queue_max_depth == 7


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LEDGER_INGEST_WRITERS", "two", "LEDGER_INGEST_WRITERS must be a whole number"),
        ("LEDGER_INGEST_WRITERS", "-1", "LEDGER_INGEST_WRITERS must be at least 0"),
        ("LEDGER_GATEWAY_LISTEN", "8000", "LEDGER_GATEWAY_LISTEN must be HOST:PORT"),
        ("LEDGER_GATEWAY_LISTEN", "x:99999", "LEDGER_GATEWAY_LISTEN must be HOST:PORT"),
        ("LEDGER_REDIS_URL", "localhost:6379", "LEDGER_REDIS_URL must start with redis://"),
        ("LEDGER_AUTH_DATABASE_URL", "mysql://x", "LEDGER_AUTH_DATABASE_URL must start with"),
        ("LEDGER_LOG_LEVEL", "loud", "LEDGER_LOG_LEVEL must be one of"),
        ("LEDGER_ANALYTICS_INTERVAL_SECONDS", "soon", "must be a number"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({name: value})


def test_empty_means_unset() -> None:
    assert Settings.from_env({"LEDGER_INGEST_WRITERS": ""}).ingest_writers == 2


def test_unknown_ledger_variables_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({"LEDGER_INGEST_WRITER": "3", "PATH": "/bin"})
    assert settings.unknown == ("LEDGER_INGEST_WRITER",)
    settings.warn_unknown()
    assert "LEDGER_INGEST_WRITER" in caplog.text


def test_secrets_have_a_masked_repr() -> None:
    settings = Settings.from_env({
        "LEDGER_INTERNAL_TOKEN": "very-secret",
        "LEDGER_AUTH_DATABASE_URL": "postgresql://u:hunter2@db/auth",
    })
    assert "very-secret" not in repr(settings)
    assert "hunter2" not in repr(settings)
    assert isinstance(settings.internal_token, Secret)
    assert settings.internal_token == "very-secret"
    assert masked("postgresql://u:hunter2@db/auth") == "postgresql://u:***@db/auth"


def test_flags_override_environment() -> None:
    settings = Settings.from_env({"LEDGER_GATEWAY_LISTEN": "127.0.0.1:9000"})
    assert settings.with_overrides(gateway_listen="127.0.0.1:1", data_dir=None).gateway_listen \
        == "127.0.0.1:1"


def test_require_names_the_missing_variable() -> None:
    with pytest.raises(ConfigError, match="LEDGER_REDIS_URL is not set"):
        Settings.from_env({}).require("redis_url")


def test_every_variable_has_a_field_and_a_doc() -> None:
    fields = set(Settings.__dataclass_fields__)
    for var in VARIABLES:
        assert var.attr in fields, var.env
        assert var.doc.strip(), var.env
        assert var.env.startswith("LEDGER_")


def test_to_env_round_trips() -> None:
    original = Settings.from_env({"LEDGER_INGEST_WRITERS": "3", "LEDGER_URL": "http://x:1"})
    again = Settings.from_env(original.to_env())
    assert again == original


def test_one_process_gives_later_daemons_the_port_an_earlier_one_bound() -> None:
    from ledger.daemons.one_process import resolved

    asked = Settings(auth_listen="127.0.0.1:0", query_listen="0.0.0.0:0",
                     ingest_listen="127.0.0.1:50123", ingest_addr="127.0.0.1:50123")
    auth = resolved(asked, "auth", 41001)
    assert (auth.auth_listen, auth.auth_addr) == ("127.0.0.1:41001", "127.0.0.1:41001")
    query = resolved(asked, "query", 41002)
    assert (query.query_listen, query.query_addr) == ("0.0.0.0:41002", "127.0.0.1:41002")
    assert resolved(asked, "ingest", 50123) == asked  # a fixed port is already in the address
    assert resolved(asked, "gateway", 8000) == asked  # no daemon calls the gateway


def test_db_pool_idle_seconds_empties_idle_pools() -> None:
    from ledger.db.pool import async_pool

    assert Settings.from_env({}).db_pool_idle_seconds is None
    settings = Settings.from_env({"LEDGER_DB_POOL_IDLE_SECONDS": "60"})
    assert settings.db_pool_idle_seconds == 60.0
    lean = async_pool("postgresql://x/y", name="t", min_size=2,
                      idle_seconds=settings.db_pool_idle_seconds)
    assert (lean.min_size, lean.max_idle) == (0, 60.0)
    kept = async_pool("postgresql://x/y", name="t", min_size=2)
    assert (kept.min_size, kept.max_idle) == (2, 600.0)
