"""The live routes over real HTTP (uvicorn in process) with real auth and ingest daemons.

Logs enter through ``POST /api/v1/ingest/single`` like an application's, so each test covers
gateway → ingest → Redis → hub → SSE → ``ledger.sse_client``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from ledger.config import Settings
from ledger.core import accounts, api_keys, projects
from ledger.daemons import auth as auth_daemon
from ledger.daemons import gateway as gateway_daemon
from ledger.daemons import ingest as ingest_daemon
from ledger.daemons.gateway.live.routes import Live
from ledger.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from ledger.sse_client import Connection, EventSource, ServerEvent
from tests.waiting import wait_until


@dataclass
class Env:
    url: str
    http: httpx.AsyncClient
    conn: psycopg.AsyncConnection[Any]
    keys: dict[str, str]  # project slug -> full key (ingest + read)
    project_ids: dict[str, str]
    gateway: Any

    @property
    def live(self) -> Live:
        live: Live = self.gateway.app.state.live
        return live

    async def ingest(self, slug: str, **fields: Any) -> str:
        body = {"timestamp": datetime.now(UTC).isoformat(), "level": "error",
                "log_type": "exception", "error_type": "ValueError",
                "error_message": "bad value", "message": "boom", **fields}
        response = await self.http.post("/api/v1/ingest/single", json=body,
                                        headers={"X-API-Key": self.keys[slug]})
        assert response.status_code == 202, response.text
        return str(body["message"])

    def source(self, path: str, slug: str = "alpha", **kwargs: Any) -> EventSource:
        return EventSource(f"{self.url}{path}", headers={"X-API-Key": self.keys[slug]},
                           retry_seconds=0.05, **kwargs)


@pytest.fixture
async def env(settings: Settings) -> AsyncIterator[Env]:
    base = settings.with_overrides(ingest_writers=0)
    async with contextlib.AsyncExitStack() as stack:
        auth = await start(stack, auth_daemon, base)
        ingest = await start(stack, ingest_daemon, base)
        gateway = await start(stack, gateway_daemon, base.with_overrides(
            auth_addr=f"127.0.0.1:{auth.port}", ingest_addr=f"127.0.0.1:{ingest.port}"))
        conn = await psycopg.AsyncConnection.connect(str(base.auth_database_url),
                                                     autocommit=True)
        stack.push_async_callback(conn.close)
        account = await accounts.register(conn, "live@example.com", "correct horse battery")
        keys, ids = {}, {}
        for slug in ("alpha", "beta"):
            project = await projects.create_project(conn, account_id=account.id, name=slug,
                                                    slug=slug)
            _, keys[slug] = await api_keys.create_key(conn, project.id, "test")
            ids[slug] = project.id
        url = f"http://127.0.0.1:{gateway.port}"
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
        yield Env(url, http, conn, keys, ids, gateway)


async def start(stack: contextlib.AsyncExitStack, module: Any, settings: Settings) -> Any:
    daemon = module.create(settings)
    await daemon.start()
    stack.push_async_callback(daemon.stop)
    return daemon


async def take(stream: AsyncIterator[ServerEvent | Connection], n: int, *,
               kinds: tuple[str, ...] = ("error_notification", "log", "skipped"),
               timeout: float = 10.0) -> list[ServerEvent]:
    """The next ``n`` events of the given kinds (connection changes and others pass by)."""
    got: list[ServerEvent] = []

    async def run() -> None:
        async for item in stream:
            if isinstance(item, ServerEvent) and item.event in kinds:
                got.append(item)
                if len(got) == n:
                    return

    await asyncio.wait_for(run(), timeout)
    return got


async def connected(stream: AsyncIterator[ServerEvent | Connection]) -> ServerEvent:
    [event] = await take(stream, 1, kinds=("connected",))
    return event


async def test_an_ingested_error_reaches_the_client_and_a_resume_gets_exactly_the_missed(
        env: Env) -> None:
    source = env.source("/api/v1/notifications/stream")
    stream = source.stream()
    hello = await connected(stream)
    assert hello.json()["projects"] == [env.project_ids["alpha"]]
    await env.ingest("alpha", message="first failure", attributes={"order": 7})
    [event] = await take(stream, 1)
    data = event.json()
    assert event.event == "error_notification"
    assert (data["message"], data["level"], data["project_id"]) == (
        "first failure", "error", env.project_ids["alpha"])
    assert data["error_type"] == "ValueError" and data["error_fingerprint"]
    assert data["attributes"] == {"order": 7} and data["id"] and data["timestamp"]
    await stream.aclose()  # the client goes away

    for n in range(3):
        await env.ingest("alpha", message=f"missed {n}")
    assert source.last_event_id == event.id
    resumed = source.stream()
    again = await connected(resumed)
    assert again.json()["resumed"] is True
    missed = await take(resumed, 3)
    assert [e.json()["message"] for e in missed] == ["missed 0", "missed 1", "missed 2"]
    await env.ingest("alpha", message="live again")
    [live] = await take(resumed, 1)
    assert live.json()["message"] == "live again"
    await resumed.aclose()


async def test_a_client_of_project_a_never_receives_project_b(env: Env) -> None:
    stream_a = env.source("/api/v1/notifications/stream", "alpha").stream()
    await connected(stream_a)
    for n in range(3):
        await env.ingest("beta", message=f"beta {n}")
    await env.ingest("alpha", message="alpha only")
    got = await take(stream_a, 1)
    assert [e.json()["message"] for e in got] == ["alpha only"]
    await stream_a.aclose()
    # Not by naming B either, nor by resuming from B's events.
    with pytest.raises(NotFoundError):
        await connected(env.source("/api/v1/notifications/stream", "alpha",
                                   params={"project_id": "beta"}).stream())


async def test_infos_are_not_notifications_but_the_tail_has_them_all(env: Env) -> None:
    notes = env.source("/api/v1/notifications/stream").stream()
    tail = env.source("/api/v1/logs/tail").stream()
    warnings = env.source("/api/v1/logs/tail", params={"level": "warning"}).stream()
    for stream in (notes, tail, warnings):
        await connected(stream)
    await env.ingest("alpha", level="info", log_type="logger", message="just info")
    await env.ingest("alpha", level="warning", log_type="logger", message="careful")
    await env.ingest("alpha", message="broken")
    assert [e.json()["message"] for e in await take(tail, 3)] == ["just info", "careful",
                                                                   "broken"]
    assert [e.json()["message"] for e in await take(warnings, 1)] == ["careful"]
    assert [e.json()["message"] for e in await take(notes, 1)] == ["broken"]
    for stream in (notes, tail, warnings):
        await stream.aclose()


async def test_refusals_are_clear_http_errors(env: Env) -> None:
    stream = "/api/v1/notifications/stream"
    with pytest.raises(InvalidInputError, match="bad event id"):
        await connected(env.source(stream, last_event_id="yesterday").stream())
    with pytest.raises(InvalidInputError, match="unknown level loud"):
        await connected(env.source(stream, params={"level": "loud"}).stream())
    with pytest.raises(AuthenticationError):
        await connected(EventSource(f"{env.url}{stream}").stream())
    _, ingest_only = await api_keys.create_key(env.conn, env.project_ids["alpha"], "app",
                                               ["ingest"])
    with pytest.raises(PermissionDeniedError, match="'read' scope"):
        await connected(EventSource(f"{env.url}{stream}",
                                    headers={"X-API-Key": ingest_only}).stream())


async def test_too_many_streams_of_one_key_are_refused_until_one_closes(env: Env) -> None:
    env.live.max_streams = 2
    first = env.source("/api/v1/logs/tail").stream()
    second = env.source("/api/v1/notifications/stream").stream()
    await connected(first)
    await connected(second)
    response = await env.http.get("/api/v1/notifications/stream",
                                  headers={"X-API-Key": env.keys["alpha"]})
    assert response.status_code == 429
    assert "too many live streams" in response.json()["detail"]
    await first.aclose()
    await wait_until(lambda: not env.live.streams or sum(env.live.streams.values()) <= 1,
                     "a closed stream released its slot")
    third = env.source("/api/v1/notifications/stream").stream()
    await connected(third)
    await second.aclose()
    await third.aclose()


async def test_heartbeats_keep_an_idle_stream_alive(env: Env) -> None:
    env.live.heartbeat_seconds = 0.1
    stream = env.source("/api/v1/notifications/stream").stream()
    beats = await take(stream, 2, kinds=("heartbeat",), timeout=5)
    assert all("time" in beat.json() for beat in beats)
    await stream.aclose()


async def test_a_stopping_gateway_ends_its_streams_itself(env: Env) -> None:
    source = env.source("/api/v1/notifications/stream")
    stream = source.stream()
    await connected(stream)
    await env.gateway.stop()
    # The open stream ended and the HTTP server finished on its own, rather than being
    # cancelled after its shutdown timeout.
    serving = env.gateway._serving
    assert serving is not None and serving.done() and not serving.cancelled()
    assert not env.live.streams
    waiting = None
    async for item in stream:
        if isinstance(item, Connection) and item.state == "waiting":
            waiting = item
            break
    assert waiting is not None and waiting.error
    await stream.aclose()


async def account(env: Env, email: str, slugs: tuple[str, ...],
                  ) -> tuple[dict[str, str], dict[str, str]]:
    """A new account owning ``slugs`` (each with a key in ``env.keys``): (headers, ids)."""
    register = await env.http.post("/api/v1/accounts/register", json={
        "email": email, "password": "correct horse battery", "name": "Owner"})
    assert register.status_code == 201, register.text
    auth = {"Authorization": f"Bearer {register.json()['access_token']}"}
    created = {}
    for slug in slugs:
        answer = await env.http.post("/api/v1/projects", headers=auth,
                                     json={"name": slug, "slug": slug})
        assert answer.status_code == 201, answer.text
        created[slug] = answer.json()["id"]
        _, env.keys[slug] = await api_keys.create_key(env.conn, created[slug], "app")
    return auth, created


async def test_an_account_resumes_every_project_it_follows(env: Env) -> None:
    auth, created = await account(env, "many@example.com", ("east", "west"))
    source = EventSource(f"{env.url}/api/v1/notifications/stream", headers=auth,
                         retry_seconds=0.05)
    stream = source.stream()
    hello = await connected(stream)
    assert sorted(hello.json()["projects"]) == sorted(created.values())
    await env.ingest("east", message="east 1")
    [first] = await take(stream, 1)
    assert first.id is not None and created["east"] in first.id  # a cursor per project
    await stream.aclose()

    await env.ingest("west", message="west while away")
    await env.ingest("east", message="east while away")
    resumed = source.stream()
    await connected(resumed)
    missed = await take(resumed, 2)
    assert sorted(e.json()["message"] for e in missed) == ["east while away", "west while away"]
    await resumed.aclose()


async def test_an_account_follows_its_projects_as_its_preferences_say(env: Env) -> None:
    auth, created = await account(env, "owner@example.com", ("gamma", "delta"))

    prefs = (await env.http.get("/api/v1/notifications/preferences", headers=auth)).json()
    assert {p["project_slug"]: p["levels"] for p in prefs["preferences"]} == {
        "gamma": ["error", "critical"], "delta": ["error", "critical"]}
    put = await env.http.put("/api/v1/notifications/preferences", headers=auth, json={
        "preferences": [{"project_id": "delta", "enabled": False},
                        {"project_id": created["gamma"], "levels": ["critical"]}]})
    assert put.status_code == 200, put.text
    by_slug = {p["project_slug"]: p for p in put.json()["preferences"]}
    assert by_slug["delta"]["enabled"] is False and by_slug["gamma"]["levels"] == ["critical"]

    stream = EventSource(f"{env.url}/api/v1/notifications/stream", headers=auth).stream()
    hello = await connected(stream)
    assert hello.json()["projects"] == [created["gamma"]]
    await env.ingest("delta", level="critical", message="muted project")
    await env.ingest("gamma", level="error", message="below the chosen level")
    await env.ingest("alpha", level="critical", message="someone else's")
    await env.ingest("gamma", level="critical", message="wanted")
    assert [e.json()["message"] for e in await take(stream, 1)] == ["wanted"]
    await stream.aclose()

    refused = await env.http.put("/api/v1/notifications/preferences", headers=auth,
                                 json={"preferences": [{"project_id": "alpha"}]})
    assert refused.status_code == 404
    bad = await env.http.put("/api/v1/notifications/preferences", headers=auth,
                             json={"preferences": [{"project_id": "gamma", "levels": ["x"]}]})
    assert bad.status_code == 400 and "unknown levels x" in bad.json()["detail"]
    as_key = await env.http.get("/api/v1/notifications/preferences",
                                headers={"X-API-Key": env.keys["alpha"]})
    assert as_key.status_code == 403
