"""`ledger alerts ...` through CliRunner against the test databases and a real receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ledger.cli.main import app
from tests.alert_receivers import WebhookReceiver


@pytest.fixture
def cli(auth_db_url: str, logs_db_url: str, redis_url: str, tmp_path: Path) -> CliRunner:
    runner = CliRunner(env={
        "LEDGER_AUTH_DATABASE_URL": auth_db_url, "LEDGER_LOGS_DATABASE_URL": logs_db_url,
        "LEDGER_REDIS_URL": redis_url, "LEDGER_DATA_DIR": str(tmp_path / "data")})
    ok(runner, "accounts", "create", "admin@ledger.local", "--password", "s3cret-pass")
    ok(runner, "projects", "create", "Shop", "--slug", "shop")
    return runner


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver().start()
    yield running
    running.stop()


def ok(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def fails(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code != 0, (args, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_alerts_commands(cli: CliRunner, receiver: WebhookReceiver) -> None:
    p = ("--project", "shop")
    added = ok(cli, "alerts", "channels", "add", *p, "--name", "hook", "--kind", "webhook",
               "--webhook-url", receiver.url, "--allow-insecure-localhost")
    secret = added.split("signing secret: ", 1)[1].split()[0]
    assert len(secret) >= 32
    listing = ok(cli, "alerts", "channels", "list", *p)
    assert "hook" in listing and secret not in listing
    assert secret not in ok(cli, "alerts", "channels", "list", *p, "--json")

    assert "https" in fails(cli, "alerts", "channels", "add", *p, "--name", "x", "--kind",
                            "webhook", "--webhook-url", "http://example.com/hook")
    assert "cannot use SMTP server" in fails(
        cli, "alerts", "channels", "add", *p, "--name", "m", "--kind", "email",
        "--smtp-host", "localhost", "--smtp-port", "1", "--security", "none",
        "--mail-from", "a@example.com", "--mail-to", "b@example.com")
    assert "unknown channel 'nope'" in fails(cli, "alerts", "rules", "add", *p, "--name", "r",
                                             "--kind", "new_group", "--channel", "nope")
    assert "no project 'other'" in fails(cli, "alerts", "rules", "list", "--project", "other")

    rule = orjson.loads(ok(cli, "alerts", "rules", "add", *p, "--name", "spikes", "--kind",
                           "group_frequency", "--threshold", "10", "--window", "5",
                           "--environment", "production", "--cooldown", "30m",
                           "--channel", "hook", "--json"))
    assert (rule["threshold"], rule["cooldown_seconds"]) == (10, 1800)
    assert rule["filters"] == {"environment": ["production"]}
    ok(cli, "alerts", "rules", "update", "spikes", *p, "--threshold", "20", "--disabled")
    [shown] = orjson.loads(ok(cli, "alerts", "rules", "list", *p, "--json"))
    assert shown["threshold"] == 20 and shown["enabled"] is False

    assert "HTTP 200" in ok(cli, "alerts", "channels", "test", "hook", *p)
    [sent] = receiver.received()
    assert sent.signed_by(secret) and sent.json()["test"] is True
    receiver.status = 500
    assert "HTTP 500" in fails(cli, "alerts", "channels", "test", "hook", *p)

    assert "snoozed rule 'spikes'" in ok(cli, "alerts", "snooze", "spikes", "2h", *p)
    [shown] = orjson.loads(ok(cli, "alerts", "rules", "list", *p, "--json"))
    assert shown["snoozed_until"] is not None
    ok(cli, "alerts", "unsnooze", "spikes", *p)
    assert "duration must look like" in fails(cli, "alerts", "snooze", "spikes", "soon", *p)
    assert orjson.loads(ok(cli, "alerts", "history", *p, "--since", "1d", "--json")) == []
    assert "since must be" in fails(cli, "alerts", "history", *p, "--since", "yesterday")

    assert "used by rule" in fails(cli, "alerts", "channels", "remove", "hook", *p)
    ok(cli, "alerts", "rules", "remove", "spikes", *p)
    ok(cli, "alerts", "channels", "remove", "hook", *p)
    assert orjson.loads(ok(cli, "alerts", "channels", "list", *p, "--json")) == []
