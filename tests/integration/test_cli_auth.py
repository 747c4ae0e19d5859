"""`ledger accounts|projects|keys` through CliRunner, against the test databases."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ledger.cli.main import app


@pytest.fixture
def cli(auth_db_url: str, redis_url: str, tmp_path: Path) -> CliRunner:
    return CliRunner(env={
        "LEDGER_AUTH_DATABASE_URL": auth_db_url,
        "LEDGER_REDIS_URL": redis_url,
        "LEDGER_DATA_DIR": str(tmp_path / "data"),  # no saved `ledger up` state here
    })


def _ok(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def _fails(cli: CliRunner, *args: str) -> tuple[int, str]:
    result = cli.invoke(app, list(args))
    assert result.exit_code != 0, (args, result.output)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return result.exit_code, lines[0]


def test_project_and_key_lifecycle(cli: CliRunner) -> None:
    created = orjson.loads(_ok(cli, "accounts", "create", "admin@ledger.local",
                               "--password", "s3cret-pass", "--json"))
    assert created["email"] == "admin@ledger.local" and created["password"] is None
    assert "admin@ledger.local" in _ok(cli, "accounts", "list")

    project = orjson.loads(_ok(cli, "projects", "create", "Shop API", "--slug", "shop",
                               "--environment", "staging", "--json"))
    assert (project["slug"], project["environment"]) == ("shop", "staging")
    assert project["owner_email"] == "admin@ledger.local"
    assert "shop" in _ok(cli, "projects", "list")
    assert "Shop API" in _ok(cli, "projects", "show", "shop")

    human = _ok(cli, "keys", "create", "--project", "shop", "--name", "web")
    assert "ledger_" in human
    key = orjson.loads(_ok(cli, "keys", "create", "--project", project["id"],
                           "--scope", "ingest", "--json"))
    assert key["full_key"].startswith(f"ledger_{key['key_id']}_")
    assert key["scopes"] == ["ingest"] and "not be shown again" in key["warning"]

    listing = _ok(cli, "keys", "list", "--project", "shop")
    assert key["key_id"] in listing and key["full_key"] not in listing

    _ok(cli, "keys", "revoke", key["full_key"])  # a full key works as well as its id
    listed = orjson.loads(_ok(cli, "keys", "list", "--project", "shop", "--json"))
    status = {k["key_id"]: k["status"] for k in listed}
    assert status[key["key_id"]] == "revoked" and list(status.values()).count("active") == 1

    updated = orjson.loads(_ok(cli, "projects", "update", "shop", "--retention-days", "7",
                               "--json"))
    assert updated["retention_days"] == 7
    shown = orjson.loads(_ok(cli, "projects", "show", "shop", "--json"))
    assert shown["active_keys"] == 1


def test_errors_are_one_line_with_a_nonzero_exit(cli: CliRunner) -> None:
    code, line = _fails(cli, "projects", "create", "Shop")
    assert "no account to own the project: pass --owner EMAIL" in line
    _ok(cli, "accounts", "create", "ops@example.com", "--password", "password1")

    code, line = _fails(cli, "projects", "create", "Shop", "--slug", "Bad Slug!",
                        "--owner", "ops@example.com")
    assert code == 64 and "invalid project slug 'Bad Slug!'" in line

    _ok(cli, "projects", "create", "Shop", "--owner", "ops@example.com")
    code, line = _fails(cli, "projects", "create", "Shop 2", "--slug", "shop",
                        "--owner", "ops@example.com")
    assert code == 73 and "project slug 'shop' is taken: choose another --slug" in line

    code, line = _fails(cli, "keys", "list", "--project", "nope")
    assert code == 66 and "no project 'nope'" in line
    code, line = _fails(cli, "keys", "create", "--project", "shop", "--scope", "admin")
    assert code == 64 and "unknown scope 'admin'" in line
    code, line = _fails(cli, "keys", "revoke", "abcdef234567")
    assert code == 66 and "no API key" in line
    code, line = _fails(cli, "accounts", "create", "ops@example.com", "--password", "password1")
    assert code == 73 and "already exists" in line


def test_generated_password_is_printed_once(cli: CliRunner) -> None:
    created = orjson.loads(_ok(cli, "accounts", "create", "gen@example.com", "--json"))
    assert len(created["password"]) >= 16


def test_unreachable_database_is_one_line(tmp_path: Path, redis_url: str) -> None:
    cli = CliRunner(env={
        "LEDGER_AUTH_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "LEDGER_REDIS_URL": redis_url, "LEDGER_DATA_DIR": str(tmp_path)})
    code, line = _fails(cli, "projects", "list")
    assert code == 69 and "cannot connect to PostgreSQL" in line and "`ledger up`" in line


def test_keys_create_prints_the_sentry_dsn_and_projects_show_its_number(
        cli: CliRunner) -> None:
    _ok(cli, "accounts", "create", "admin@ledger.local", "--password", "s3cret-pass")
    project = orjson.loads(_ok(cli, "projects", "create", "Shop", "--slug", "shop", "--json"))
    number = project["dsn_id"]
    assert isinstance(number, int) and number > 0
    key = orjson.loads(_ok(cli, "keys", "create", "--project", "shop", "--json"))
    assert key["dsn"] == f"http://{key['full_key']}@127.0.0.1:8000/{number}"
    human = _ok(cli, "keys", "create", "--project", "shop")
    assert "Sentry SDK DSN: http://ledger_" in human and f"@127.0.0.1:8000/{number}" in human
    shown = _ok(cli, "projects", "show", "shop")
    assert f"http://<API key>@127.0.0.1:8000/{number}" in shown
    served = CliRunner(env={**cli.env, "LEDGER_GATEWAY_LISTEN": "0.0.0.0:9000"})
    wildcard = orjson.loads(_ok(served, "projects", "show", "shop", "--json"))
    assert wildcard["dsn_template"] == f"http://<API key>@localhost:9000/{number}"


def test_keys_by_prefix_revoked_twice_and_listed_for_the_keys_project(cli: CliRunner) -> None:
    _ok(cli, "accounts", "create", "keys@example.com", "--password", "password1")
    _ok(cli, "projects", "create", "Shop", "--slug", "shop", "--owner", "keys@example.com")
    key = orjson.loads(_ok(cli, "keys", "create", "--project", "shop", "--json"))
    # With the key in use, `keys list` defaults to its project, like `logs` and `errors` do.
    with_key = CliRunner(env={**cli.env, "LEDGER_API_KEY": key["full_key"]})
    assert [k["key_id"] for k in orjson.loads(_ok(with_key, "keys", "list", "--json"))] == [
        key["key_id"]]
    code, line = _fails(cli, "keys", "list")
    assert code == 64 and "pass --project <slug>" in line

    first = cli.invoke(app, ["keys", "revoke", key["key_id"][:6]])
    assert first.exit_code == 0, first.output
    assert f"revoked API key {key['key_id']}" in first.stdout
    assert "INFO" not in first.output and "ledger.core" not in first.output
    again = cli.invoke(app, ["keys", "revoke", key["key_id"]])
    assert again.exit_code == 0 and "was already revoked" in again.stdout
    assert "✓ revoked" not in again.stdout
    assert orjson.loads(_ok(cli, "keys", "revoke", key["key_id"][:8], "--json"))[
        "already_revoked"] is True
    code, line = _fails(cli, "keys", "revoke", "ab!")
    assert code == 64 and "is not a valid key id" in line


def test_queue_status_names_projects_by_slug(cli: CliRunner, redis_url: str) -> None:
    import redis as sync_redis

    from ledger.queue import names

    _ok(cli, "accounts", "create", "queue@example.com", "--password", "password1")
    project = orjson.loads(_ok(cli, "projects", "create", "Queued", "--slug", "queued",
                               "--owner", "queue@example.com", "--json"))
    client = sync_redis.Redis.from_url(redis_url)
    try:
        client.sadd(names.QUEUE_PROJECTS, project["id"])
    finally:
        client.close()
    [row] = orjson.loads(_ok(cli, "queue", "status", "--json"))
    assert (row["project_id"], row["project_slug"]) == (project["id"], "queued")
    narrow = CliRunner(env={**cli.env, "COLUMNS": "80"})
    [line] = [x for x in _ok(narrow, "queue", "status").splitlines() if project["id"][:8] in x]
    assert line.startswith("queued ") and len(line) <= 80
    assert orjson.loads(_ok(cli, "queue", "dead-letters", "--project", "queued", "--json")) == []


def test_no_stack_says_to_run_ledger_up(tmp_path: Path) -> None:
    from tests.ports import free_port

    # What a stopped `ledger up` leaves: a state naming servers that are gone.
    data = tmp_path / ".ledger"
    data.mkdir()
    port = free_port()
    (data / "state.json").write_bytes(orjson.dumps({
        "auth_database_url": f"postgresql://postgres@127.0.0.1:{port}/ledger_auth",
        "logs_database_url": f"postgresql://postgres@127.0.0.1:{port}/ledger_logs",
        "redis_url": f"redis://127.0.0.1:{free_port()}/0"}))
    gone = CliRunner(env={"LEDGER_DATA_DIR": str(data), "LEDGER_AUTH_DATABASE_URL": None,
                          "LEDGER_LOGS_DATABASE_URL": None, "LEDGER_REDIS_URL": None})
    for args in (["projects", "list"], ["queue", "status"], ["keys", "list", "-p", "x"],
                 ["db", "status"], ["partitions", "list"]):
        code, line = _fails(gone, *args)
        assert code == 69 and "the stack is not reachable" in line, line
        assert "start it with `ledger up`" in line
        assert not line.startswith("error: Error 111")
