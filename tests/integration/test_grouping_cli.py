"""`ledger errors rules …`, `merge`, `unmerge` and the merge history of `ledger errors show`,
through CliRunner against a real gateway over HTTP (auth, query and gateway in this process)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.config import Settings
from ledger.daemons import auth as auth_daemon
from ledger.daemons import query as query_daemon
from ledger.daemons.gateway.daemon import GatewayDaemon
from tests.integration.test_query_cli import Cli
from tests.logrows import insert_group
from tests.ports import free_port


@pytest.fixture
async def cli(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[Cli, str]]:
    """A CLI with a read+triage key, and a read-only key."""
    daemons: list[Any] = [auth_daemon.create(settings), query_daemon.create(settings)]
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
            tokens = (await http.post("/api/v1/accounts/register", json={
                "email": f"{uuid.uuid4().hex[:8]}@example.com",
                "password": "correct horse battery"})).json()
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            slug = f"g-{uuid.uuid4().hex[:8]}"
            project = (await http.post("/api/v1/projects", headers=bearer,
                                       json={"name": "Grouping", "slug": slug})).json()
            keys = [(await http.post(f"/api/v1/projects/{slug}/api-keys", headers=bearer,
                                     json={"scopes": scopes})).json()["full_key"]
                    for scopes in (["read", "triage"], ["read"])]
        yield Cli(url, keys[0], project, settings.logs_database_url or "",
                  tmp_path / "data"), keys[1]
    finally:
        for daemon in reversed(daemons):
            await daemon.stop()


async def test_rules_from_the_command_line(cli: tuple[Cli, str]) -> None:
    env, read_only = cli
    out = await env.ok("errors", "rules", "add", "error.type:ConnectionError -> connection-errors")
    assert "revision 1" in out and "error.type:ConnectionError -> connection-errors" in out
    await env.ok("errors", "rules", "add", "--position", "0", "level:critical -> paging")
    listed = await env.json("errors", "rules", "list")
    assert [r["rule"] for r in listed["rules"]] == [
        "level:critical -> paging", "error.type:ConnectionError -> connection-errors"]
    tested = await env.json("errors", "rules", "test",
                            '{"level": "error", "error_type": "ConnectionError", "message": "x"}')
    assert tested["rule"]["matcher"] == "error.type:ConnectionError"
    out = await env.ok("errors", "rules", "test", '{"level": "error", "message": "boom"}',
                       "--rule", "message:boom* -> booms")
    assert "rule: message:boom*" in out
    code, line = await env.fails("errors", "rules", "add", "level:error -> x", key=read_only)
    assert code != 0 and "triage" in line
    code, line = await env.fails("errors", "rules", "add", "no arrow here")
    assert "->" in line
    await env.ok("errors", "rules", "remove", "0")
    assert len((await env.json("errors", "rules", "list"))["rules"]) == 1


async def test_merge_unmerge_and_the_history_in_show(cli: tuple[Cli, str]) -> None:
    env, _ = cli
    project = str(env.project["id"])
    a = insert_group(env.logs_db, project, "fp-a", title="KeyError: a", event_count=5)
    b = insert_group(env.logs_db, project, "fp-b", title="KeyError: b", event_count=2)
    out = await env.ok("errors", "merge", a["id"], b["id"])
    assert "merged 1 group(s) into 'KeyError: a' (7 events)" in out
    listed = await env.json("errors", "list")
    assert [g["id"] for g in listed["error_groups"]] == [a["id"]]
    shown = await env.ok("errors", "show", a["id"])
    assert f"{b['id']} merged in (2 events)" in shown
    assert (await env.json("errors", "show", b["id"]))["merged_into"] == a["id"]
    out = await env.ok("errors", "unmerge", a["id"], b["id"])
    assert "(5 events left)" in out
    shown = await env.ok("errors", "show", a["id"])
    assert ", unmerged " in shown
    _, line = await env.fails("errors", "unmerge", a["id"], b["id"])
    assert "is not merged into" in line
