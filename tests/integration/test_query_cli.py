"""`ledger logs` and `ledger errors` through CliRunner against a real gateway over HTTP.

Auth, query and the gateway run in this process on free ports; the CLI runs in a worker thread
(it is synchronous) and reaches the gateway over TCP like it would on a laptop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner, Result

from ledger.cli.main import app
from ledger.config import Settings
from ledger.daemons import auth as auth_daemon
from ledger.daemons import query as query_daemon
from ledger.daemons.gateway.daemon import GatewayDaemon
from tests.logrows import insert_group, insert_logs, log
from tests.ports import free_port


@dataclass
class Cli:
    url: str
    key: str
    project: dict[str, Any]
    logs_db: str
    data_dir: Path
    email: str = ""
    bearer: dict[str, str] = field(default_factory=dict)

    async def run(self, *args: str, key: str | None = None, url: str | None = None) -> Result:
        runner = CliRunner(env={"LEDGER_URL": url or self.url, "LEDGER_API_KEY": key or self.key,
                                "LEDGER_DATA_DIR": str(self.data_dir), "COLUMNS": "200"})
        return await asyncio.to_thread(runner.invoke, app, list(args))

    async def ok(self, *args: str) -> str:
        result = await self.run(*args)
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    async def json(self, *args: str) -> Any:
        return orjson.loads(await self.ok(*args, "--json"))

    async def fails(self, *args: str, **kw: str) -> tuple[int, str]:
        result = await self.run(*args, **kw)
        assert result.exit_code != 0, (args, result.output)
        assert "Traceback" not in result.output and result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        return result.exit_code, lines[0]


@pytest.fixture
async def cli(settings: Settings, tmp_path: Path) -> AsyncIterator[Cli]:
    daemons: list[Any] = [auth_daemon.create(settings),
                          query_daemon.create(settings, count_grace_seconds=10.0)]
    for daemon in daemons:
        await daemon.start()
    gateway = GatewayDaemon(settings.with_overrides(
        auth_addr=f"127.0.0.1:{daemons[0].port}", query_addr=f"127.0.0.1:{daemons[1].port}",
        ingest_addr=f"127.0.0.1:{free_port()}", gateway_listen="127.0.0.1:0"))
    await gateway.start()
    daemons.append(gateway)
    url = f"http://127.0.0.1:{gateway.port}"
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            email = f"{uuid.uuid4().hex[:8]}@example.com"
            tokens = (await http.post("/api/v1/accounts/register", json={
                "email": email, "password": "correct horse battery"})).json()
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            project = (await http.post("/api/v1/projects", headers=bearer,
                                       json={"name": "CLI", "slug": "cli-app"})).json()
            key = (await http.post("/api/v1/projects/cli-app/api-keys", headers=bearer,
                                   json={"scopes": ["read", "triage"]})).json()["full_key"]
        yield Cli(url, key, project, settings.logs_database_url or "", tmp_path / "data", email,
                  bearer)
    finally:
        for daemon in reversed(daemons):
            await daemon.stop()


async def test_logs_filters_and_paging(cli: Cli) -> None:
    now = datetime.now(UTC)
    p = cli.project["id"]
    insert_logs(cli.logs_db, [
        log(p, now - timedelta(minutes=1), message="user signed in", environment="prod",
            release="1.0"),
        log(p, now - timedelta(minutes=2), message="payment failed", level="error",
            log_type="exception", error_type="CardError", error_message="declined",
            environment="prod", release="1.1", error_fingerprint="fp-card"),
        log(p, now - timedelta(minutes=3), message="slow query", level="warning",
            log_type="database", environment="staging", release="1.1"),
        log(p, now - timedelta(hours=3), message="boot", release="0.9"),
    ])

    async def messages(*args: str) -> list[str]:
        page = await cli.json("logs", *args)
        return [row["message"] for row in page["logs"]]

    assert await messages() == ["user signed in", "payment failed", "slow query", "boot"]
    assert await messages("--level", "error") == ["payment failed"]
    assert await messages("-l", "error", "-l", "warning") == ["payment failed", "slow query"]
    assert await messages("--type", "database") == ["slow query"]
    assert await messages("--env", "staging") == ["slow query"]
    assert await messages("--release", "1.1") == ["payment failed", "slow query"]
    assert await messages("--fingerprint", "fp-card") == ["payment failed"]
    assert await messages("--search", "DECLINED") == ["payment failed"]
    assert await messages("--since", "1h") == ["user signed in", "payment failed", "slow query"]
    assert await messages("--period", "last24h", "--project", "cli-app") == [
        "user signed in", "payment failed", "slow query", "boot"]
    assert await messages("--from", (now - timedelta(hours=4)).isoformat(),
                          "--to", (now - timedelta(hours=2)).isoformat()) == ["boot"]
    first = await cli.json("logs", "--limit", "3")
    assert first["has_more"] and first["total"] == 4
    rest = await cli.json("logs", "--limit", "3", "--cursor", first["next_cursor"])
    assert [r["message"] for r in rest["logs"]] == ["boot"]
    # The table for people: oldest first, with how many matched.
    out = await cli.ok("logs", "--level", "error", "--level", "warning")
    assert out.index("slow query") < out.index("CardError: declined")
    assert "2 of 2 matching logs" in out


async def test_logs_shows_one_log_in_full_by_its_id_or_a_prefix(cli: Cli) -> None:
    now = datetime.now(UTC)
    trace = 'Traceback (most recent call last):\n  File "shop/pay.py", line 3, in charge\n'
    [row] = insert_logs(cli.logs_db, [log(
        cli.project["id"], now, level="error", log_type="exception", message="payment [red]x",
        error_type="CardError", error_message="declined", stack_trace=trace,
        environment="prod", release="1.1", attributes={"order": 42, "user": {"id": "u7"}},
        error_fingerprint="fp-card")])
    whole = str(row["id"])
    shown = await cli.json("logs", whole)
    assert shown["id"] == whole and shown["stack_trace"] == trace
    assert shown["attributes"] == {"order": 42, "user": {"id": "u7"}}
    out = await cli.ok("logs", whole[:8])
    assert "CardError: declined" in out and "payment [red]x" in out  # sent text, not markup
    assert 'File "shop/pay.py", line 3' in out and '"order": 42' in out
    assert "fp-card" in out and whole in out
    _, line = await cli.fails("logs", whole, "--level", "error")
    assert "a LOG_ID shows that one log" in line
    _, line = await cli.fails("logs", "not/an-id")
    assert "is not a valid log id" in line
    _, line = await cli.fails("logs", "f" * 12)
    assert "not found" in line


async def test_logs_patterns_turn_a_flood_into_one_line(cli: Cli) -> None:
    now = datetime.now(UTC)
    p = cli.project["id"]
    insert_logs(cli.logs_db, [
        log(p, now - timedelta(seconds=i), message=f"cache miss for user {i} after {i}ms")
        for i in range(1, 1201)  # more than one page of the read API
    ] + [log(p, now - timedelta(seconds=5, milliseconds=i), message="disk full",
             level="error") for i in range(3)])
    found = await cli.json("logs", "--patterns")
    assert found["logs_examined"] == 1203 and found["complete"] is True
    assert [(x["template"], x["count"]) for x in found["patterns"]] == [
        ("cache miss for user <num> after <duration>", 1200), ("disk full", 3)]
    assert found["patterns"][1]["levels"] == {"error": 3}
    only_errors = await cli.json("logs", "--patterns", "--level", "error")
    assert [x["count"] for x in only_errors["patterns"]] == [3]
    out = await cli.ok("logs", "--patterns", "--limit", "1")
    assert "cache miss for user <num> after <duration>" in out and "99.8%" in out
    assert "2 patterns in 1203 logs; 1 more with --limit" in out
    _, line = await cli.fails("logs", "--patterns", "--follow")
    assert "--patterns reads the newest logs" in line


async def test_errors_list_show_resolve_ignore_reopen(cli: Cli) -> None:
    now = datetime.now(UTC)
    [sample] = insert_logs(cli.logs_db, [log(
        cli.project["id"], now, level="error", log_type="exception", message="checkout",
        error_type="KeyError", error_message="'sku'",
        stack_trace='Traceback (most recent call last):\n  File "shop/cart.py", line 9, in add\n'
                    "KeyError: 'sku'")])
    group = insert_group(cli.logs_db, cli.project["id"], "fp-sku", title="KeyError: 'sku'",
                         sample_log_id=sample["id"], event_count=12,
                         components={"method": "stacktrace", "error_type": "KeyError",
                                     "frames": ["cart.py:add"], "in_app": True})
    listed = await cli.json("errors", "list")
    assert [g["id"] for g in listed["error_groups"]] == [group["id"]]
    out = await cli.ok("errors", "list")
    assert "KeyError: 'sku'" in out and "unresolved" in out
    shown = await cli.ok("errors", "show", group["id"])
    assert "cart.py:add" in shown and "why grouped" in shown and "shop/cart.py" in shown
    assert "12" in shown
    out = await cli.ok("errors", "resolve", group["id"], "--release", "2.4.0")
    assert "resolved" in out and "2.4.0" in out
    detail = await cli.json("errors", "show", group["id"])
    assert detail["status"] == "resolved" and detail["resolved_in_release"] == "2.4.0"
    assert (await cli.json("errors", "list", "--status", "unresolved"))["error_groups"] == []
    assert "ignored" in await cli.ok("errors", "ignore", group["id"])
    assert (await cli.json("errors", "show", group["id"]))["status"] == "ignored"
    assert "reopened" in await cli.ok("errors", "reopen", group["id"])
    assert (await cli.json("errors", "show", group["id"]))["status"] == "unresolved"


async def test_cli_errors_are_one_clear_line(cli: Cli) -> None:
    code, line = await cli.fails("logs", "--since", "five minutes")
    assert code == 64 and "--since must look like" in line
    code, line = await cli.fails("logs", "--level", "loud")
    assert code == 64 and "level must be one or more" in line
    code, line = await cli.fails("logs", "--project", "someone-elses")
    assert code == 66 and "not found" in line
    code, line = await cli.fails("errors", "show", str(uuid.uuid4()))
    assert code == 66 and "not found" in line
    code, line = await cli.fails("errors", "resolve", str(uuid.uuid4()))
    assert code == 66
    code, line = await cli.fails("logs", key="ledger_nosuchkey_secret")
    assert code == 77
    code, line = await cli.fails("logs", url=f"http://127.0.0.1:{free_port()}")
    assert code == 69 and "cannot reach the gateway" in line


async def test_ids_are_typed_as_unique_prefixes_and_shown_whole(cli: Cli) -> None:
    p = cli.project["id"]
    first = insert_group(cli.logs_db, p, "fp-a", id="abcdef01-0000-4000-8000-000000000001",
                         title="KeyError: 'a'")
    insert_group(cli.logs_db, p, "fp-b", id="abcdef01-0000-4000-8000-000000000002")
    lone = insert_group(cli.logs_db, p, "fp-c", id="0123cdef-0000-4000-8000-000000000003",
                        title="ValueError: lone")
    assert (await cli.json("errors", "show", "0123cd"))["id"] == lone["id"]
    assert (await cli.json("errors", "resolve", "0123CDEF"))["status"] == "resolved"
    assert (await cli.json("errors", "reopen", "0123cdef-00"))["status"] == "unresolved"
    assert (await cli.json("errors", "ignore", lone["id"]))["status"] == "ignored"
    code, line = await cli.fails("errors", "show", "abcdef")
    assert code == 64 and "ambiguous: 2 matches" in line
    assert (await cli.json("errors", "show", "abcdef01-0000-4000-8000-000000000001")
            )["title"] == first["title"]
    # Malformed and unknown ids: the same clear words from every command, never "Not Found".
    for command in ("show", "resolve", "ignore", "reopen"):
        code, line = await cli.fails("errors", command, "not-a-uuid")
        assert code == 64 and "'not-a-uuid' is not a valid error group id" in line, line
        code, line = await cli.fails("errors", command, "e418db3c")
        assert code == 66 and "error group e418db3c not found" in line, line
    code, line = await cli.fails("errors", "show", "abc")
    assert "first 6 or more characters" in line
    code, line = await cli.fails("errors", "merge", "0123cd", "abcdef")
    assert "ambiguous" in line
    # The REST route resolves prefixes too, and a log id by prefix.
    [row] = insert_logs(cli.logs_db, [log(p, datetime.now(UTC), message="by prefix")])
    async with httpx.AsyncClient(base_url=cli.url, headers={"X-API-Key": cli.key}) as http:
        found = await http.get(f"/api/v1/logs/{row['id'][:10]}")
        assert found.status_code == 200 and found.json()["message"] == "by prefix"
        assert (await http.get(f"/api/v1/error-groups/{lone['id'][:8]}")).json()["id"] \
            == lone["id"]
        refused = await http.get("/api/v1/error-groups/zz-not-an-id")
        assert refused.status_code == 400 and "not a valid error group id" in refused.text


async def test_tables_fit_the_terminal_one_line_per_row(cli: Cli) -> None:
    now = datetime.now(UTC)
    p = cli.project["id"]
    rows = insert_logs(cli.logs_db, [log(
        p, now - timedelta(seconds=i), level="error", log_type="exception",
        message="Unhandled exception in request handler " * 3, error_type="ZeroDivisionError",
        error_message="division by zero", environment="production", release="2024.11.30-rc1")
        for i in range(5)])
    insert_group(cli.logs_db, p, "fp-wide", title="ZeroDivisionError: division by zero " * 4)
    for columns in (80, 140):
        runner = CliRunner(env={"LEDGER_URL": cli.url, "LEDGER_API_KEY": cli.key,
                                "LEDGER_DATA_DIR": str(cli.data_dir), "COLUMNS": str(columns)})
        for args in (["logs"], ["errors", "list"]):
            result = await asyncio.to_thread(runner.invoke, app, args)
            assert result.exit_code == 0, result.output
            lines = result.stdout.splitlines()
            assert all(len(line) <= columns for line in lines), lines
            assert "…" in result.stdout  # the message or title was cut, not wrapped
            if args == ["logs"]:
                # One line per log, ending in its id's shortest unique prefix (whole, 8+).
                shown = [line.split()[-1] for line in lines[1:6]]
                assert len(set(shown)) == 5 and all(len(s) >= 8 for s in shown)
                assert sorted(r["id"] for r in rows for s in shown if r["id"].startswith(s)) \
                    == sorted(r["id"] for r in rows)
                assert lines[6] == "5 of 5 matching logs"
                assert ("environment" in lines[0]) == (columns >= 130)


async def test_login_reaches_every_project_and_refusals_name_the_credential(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with httpx.AsyncClient(base_url=cli.url, headers=cli.bearer) as http:
        await http.post("/api/v1/projects", json={"name": "Shop", "slug": "shop"})
    shop_group = insert_group(cli.logs_db, (await _project_id(cli, "shop")), "fp-shop",
                              title="KeyError: shop")
    config = tmp_path / "config"
    # No key anywhere: no LEDGER_API_KEY and a data dir without a `ledger up` state.
    bare = {"LEDGER_URL": cli.url, "LEDGER_API_KEY": None, "LEDGER_DATA_DIR": str(tmp_path),
            "XDG_CONFIG_HOME": str(config), "COLUMNS": "200"}
    keyed = bare | {"LEDGER_API_KEY": cli.key}

    async def run(env: dict[str, str | None], *args: str) -> Result:
        return await asyncio.to_thread(CliRunner(env=env).invoke, app, list(args))

    refused = await run(keyed, "logs", "--project", "shop")
    assert refused.exit_code == 66
    line = refused.stderr.strip()
    assert f"the API key {cli.key.split('_')[1]} (from LEDGER_API_KEY), a key of project" \
           " cli-app" in line and "`ledger login` reaches every project" in line
    nothing = await run(bare, "logs")
    assert nothing.exit_code == 78 and "run `ledger login`" in nothing.stderr

    logged = await run(bare, "login", "--email", cli.email, "--password",
                       "correct horse battery")
    assert logged.exit_code == 0 and f"logged in to {cli.url} as {cli.email}" in logged.stdout
    saved = config / "ledger" / "credentials.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert "correct horse battery" not in saved.read_text()

    # Logged in, every project of the account is one --project away.
    assert orjson.loads((await run(bare, "logs", "--project", "shop", "--json")).stdout)[
        "logs"] == []
    shop = orjson.loads((await run(bare, "errors", "list", "-p", "shop", "--json")).stdout)
    assert [g["id"] for g in shop["error_groups"]] == [shop_group["id"]]
    which = await run(bare, "logs")
    assert which.exit_code == 64 and "pass --project <slug>" in which.stderr
    assert "project_id" not in which.stderr
    bad = await run(bare, "logs", "-p", "shop", "--from", "notadate")
    assert bad.exit_code == 64 and "--from" in bad.stderr and "periodFrom" not in bad.stderr
    assert "(sent" not in bad.stderr  # a bad date is not an access problem
    other = await run(bare, "logs", "--project", "someone-elses")
    assert f"(sent the login of {cli.email} (`ledger login`))" in other.stderr
    # A key still wins when given: scripts keep working.
    assert (await run(bare, "logs", "--api-key", cli.key, "--json")).exit_code == 0

    # An expired access token is refreshed on the way (and the rotated pair saved).
    data = orjson.loads(saved.read_bytes())
    before = data["logins"][cli.url]["refresh_token"]
    data["logins"][cli.url]["access_expires_at"] = "2000-01-01T00:00:00+00:00"
    saved.write_bytes(orjson.dumps(data))
    assert (await run(bare, "errors", "list", "-p", "shop", "--json")).exit_code == 0
    assert orjson.loads(saved.read_bytes())["logins"][cli.url]["refresh_token"] != before
    await _tail_reconnects_with_a_fresh_token(cli, config, monkeypatch)

    out = await run(bare, "logout")
    assert out.exit_code == 0 and f"logged out {cli.email}" in out.stdout
    assert orjson.loads(saved.read_bytes())["logins"] == {}
    assert "run `ledger login`" in (await run(bare, "logs")).stderr
    assert "not logged in" in (await run(bare, "logout")).stdout

    # The state of `ledger up` is found from a subfolder, like git finds .git.
    stack = tmp_path / "stack"
    (stack / ".ledger").mkdir(parents=True)
    (stack / ".ledger" / "state.json").write_bytes(orjson.dumps({"url": cli.url,
                                                                  "api_key": cli.key}))
    (stack / "tests" / "deep").mkdir(parents=True)
    monkeypatch.chdir(stack / "tests" / "deep")
    found = await run({"LEDGER_URL": None, "LEDGER_API_KEY": None, "LEDGER_DATA_DIR": None,
                       "XDG_CONFIG_HOME": str(config)}, "errors", "list", "--json")
    assert found.exit_code == 0, found.output
    assert "LEDGER_URL is not set" not in found.output


async def _tail_reconnects_with_a_fresh_token(cli: Cli, config: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`ledger tail` outlives the 15-minute access token: each (re)connection refreshes it."""
    from ledger.cli import credentials
    from ledger.cli.tail import _source
    from ledger.sse_client import Connection

    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    login = credentials.saved_login(cli.url)
    assert login is not None
    stale = credentials.Login(**{**vars(login), "access_token": "expired.access.token",
                                 "access_expires_at": "2000-01-01T00:00:00+00:00"})
    source = _source(Settings(url=cli.url), credentials.Credential(
        {"Authorization": "Bearer expired.access.token"}, "the login", stale),
        False, "shop", "", None)
    states = []
    stream = source.stream()
    try:
        async with asyncio.timeout(20):
            async for item in stream:
                if isinstance(item, Connection):
                    states.append(item.state)
                    if item.state != "connecting":
                        break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert states == ["connecting", "connected"]
    assert source.headers["Authorization"] != "Bearer expired.access.token"


async def _project_id(cli: Cli, slug: str) -> str:
    async with httpx.AsyncClient(base_url=cli.url, headers=cli.bearer) as http:
        return str((await http.get(f"/api/v1/projects/{slug}")).json()["id"])
