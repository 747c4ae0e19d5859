"""The live routes over real HTTP (uvicorn in process) with real auth and ingest daemons.

Logs enter through ``POST /api/v1/ingest/single`` like an application's, so each test covers
gateway → ingest → Redis → hub → SSE → ``ledger.sse_client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis

from ledger.config import Settings
from ledger.core import accounts, api_keys, projects
from ledger.daemons import auth as auth_daemon
from ledger.daemons import gateway as gateway_daemon
from ledger.daemons import ingest as ingest_daemon
from ledger.daemons.gateway.app import create_app
from ledger.daemons.gateway.daemon import GatewayDaemon
from ledger.daemons.gateway.live.routes import BODY_TRANSPARENT, Live
from ledger.daemons.gateway.live.sse import DirectWriter
from ledger.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from ledger.sse_client import Connection, EventSource, ServerEvent
from tests.live_support import emit_error
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
    owner = f"API key:{api_keys.parse_key(env.keys['alpha'])[0]}"
    await wait_until(lambda: not env.live.streams or env.live.streams[owner] <= 1,
                     "a closed stream released its slot")
    third = env.source("/api/v1/notifications/stream").stream()
    await connected(third)
    await second.aclose()
    await third.aclose()


async def test_more_keys_of_a_project_do_not_buy_more_streams(env: Env) -> None:
    env.live.max_streams = 2
    _, second_key = await api_keys.create_key(env.conn, env.project_ids["alpha"], "second")
    first = env.source("/api/v1/logs/tail").stream()
    second = EventSource(f"{env.url}/api/v1/logs/tail", headers={"X-API-Key": second_key},
                         retry_seconds=0.05).stream()
    await connected(first)
    await connected(second)
    _, third_key = await api_keys.create_key(env.conn, env.project_ids["alpha"], "third")
    response = await env.http.get("/api/v1/logs/tail", headers={"X-API-Key": third_key})
    assert response.status_code == 429
    assert "too many live streams open for this project" in response.json()["detail"]
    # Another account's project is not affected.
    stranger = await accounts.register(env.conn, "stranger@example.com", "correct horse battery")
    gamma = await projects.create_project(env.conn, account_id=stranger.id, name="gamma",
                                          slug="gamma")
    _, gamma_key = await api_keys.create_key(env.conn, gamma.id, "test")
    other = EventSource(f"{env.url}/api/v1/logs/tail", headers={"X-API-Key": gamma_key},
                        retry_seconds=0.05).stream()
    await connected(other)
    for stream in (first, second, other):
        await stream.aclose()


async def test_more_projects_of_an_account_do_not_buy_more_streams(env: Env) -> None:
    """Issue 9 item 17: the budget holds per account across its projects' keys and its token."""
    env.live.max_streams = 2
    first = env.source("/api/v1/logs/tail", slug="alpha").stream()
    second = env.source("/api/v1/logs/tail", slug="beta").stream()
    await connected(first)
    await connected(second)
    # Each key and each project holds one stream only: the account's budget is what is spent.
    _, another_beta_key = await api_keys.create_key(env.conn, env.project_ids["beta"], "more")
    response = await env.http.get("/api/v1/logs/tail", headers={"X-API-Key": another_beta_key})
    assert response.status_code == 429
    assert response.json()["detail"] == ("too many live streams open for this account"
                                         " (2 per gateway): close one and retry")
    assert response.headers["Retry-After"] == "5"
    # The account's own token spends the same budget.
    login = await env.http.post("/api/v1/accounts/login", json={
        "email": "live@example.com", "password": "correct horse battery"})
    assert login.status_code == 200, login.text
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    response = await env.http.get("/api/v1/notifications/stream", headers=bearer)
    assert response.status_code == 429
    assert "for this account" in response.json()["detail"]
    await first.aclose()
    await wait_until(lambda: sum((env.live.streams or {}).values()) <= 3,
                     "a closed stream released its slots")
    third = EventSource(f"{env.url}/api/v1/logs/tail", headers={"X-API-Key": another_beta_key},
                        retry_seconds=0.05).stream()
    await connected(third)
    for stream in (second, third):
        await stream.aclose()


class RawSseReader:
    """An SSE client on a bare socket with a tiny receive buffer, which reads only when told:
    a client that stops reading backs the gateway's socket up within a few frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._pending = b""

    @classmethod
    async def open(cls, url: str, path: str, key: str) -> RawSseReader:
        host, port = url.removeprefix("http://").split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head, head
        return cls(reader, writer)

    async def frames(self) -> list[dict[str, str]]:
        """The SSE frames of the next HTTP chunk, as {field: value}."""
        size = int(await self.reader.readuntil(b"\r\n"), 16)
        data = self._pending + (await self.reader.readexactly(size + 2))[:-2]
        *complete, self._pending = data.split(b"\n\n")
        frames = []
        for raw in complete:
            fields = dict(line.split(": ", 1) for line in raw.decode().split("\n")
                          if ": " in line)
            frames.append(fields)
        return frames

    def close(self) -> None:
        self.writer.close()


async def test_a_client_that_stops_reading_gets_every_event_in_order_once_it_reads_again(
        env: Env, aredis: aioredis.Redis) -> None:
    """The hub writes to an idle client directly; once the client's socket backs up, its events
    wait in its bounded queue and then in a catch-up from the stream: nothing is lost silently,
    and a fast client on the same project is not held back meanwhile."""
    project = env.project_ids["alpha"]
    env.live.hub.queue_size = 5  # past five waiting events, the slow client catches up
    before = set(env.live.hub.subscriptions)
    slow = await RawSseReader.open(env.url, "/api/v1/notifications/stream", env.keys["alpha"])
    [sub] = set(env.live.hub.subscriptions) - before
    assert [f["event"] for f in await slow.frames()] == ["connected"]
    fast = env.source("/api/v1/notifications/stream").stream()
    await connected(fast)
    backlog_seen = 0
    sent = []
    for _ in range(200):  # 200 of 20 KB: far more than the sockets' buffers hold
        sent.append((await emit_error(aredis, project, stack_trace="x" * 20_000))[0])
        backlog_seen = max(backlog_seen, sub.backlog)
    assert [e.id for e in await take(fast, len(sent), timeout=30)] == sent
    assert backlog_seen > 0  # the slow client did leave the direct path for its queue
    got: list[dict[str, str]] = []
    async with asyncio.timeout(30):
        while not got or got[-1].get("id") != sent[-1]:
            got.extend(f for f in await slow.frames() if f["event"] != "heartbeat")
    slow.close()
    await fast.aclose()
    assert [(f["event"], f["id"]) for f in got] == [("error_notification", i) for i in sent]


async def test_the_hub_writes_chunks_straight_to_the_socket_and_they_parse(
        env: Env, aredis: aioredis.Redis) -> None:
    """The real server offers the raw chunk writer, the live route uses it past the app's
    middleware, and what it writes is well-framed HTTP chunks of whole SSE events, in order,
    to one-project and many-project clients alike."""
    project = env.project_ids["alpha"]
    before = set(env.live.hub.subscriptions)
    raw = await RawSseReader.open(env.url, "/api/v1/notifications/stream", env.keys["alpha"])
    [sub] = set(env.live.hub.subscriptions) - before
    assert isinstance(sub.direct, DirectWriter) and sub.direct.raw is not None
    assert [f["event"] for f in await raw.frames()] == ["connected"]
    auth, ids = await account(env, "wire@example.com", ("wire-a", "wire-b"))
    many = EventSource(f"{env.url}/api/v1/notifications/stream", headers=auth,
                       retry_seconds=0.05).stream()
    await connected(many)
    sent = [(await emit_error(aredis, project))[0] for _ in range(5)]
    await emit_error(aredis, env.project_ids["beta"], message="beta's")  # not for alpha
    sent += [(await emit_error(aredis, project))[0] for _ in range(5)]
    got: list[dict[str, str]] = []
    async with asyncio.timeout(10):
        while len(got) < len(sent):
            got.extend(f for f in await raw.frames() if f["event"] != "heartbeat")
    raw.close()
    assert [(f["event"], f["id"]) for f in got] == [("error_notification", i) for i in sent]
    assert not [f for f in got if "beta's" in f["data"]]
    # The account's stream (per-client cursors, encoded per client) takes the same writes.
    wire_a = ids["wire-a"]
    many_sent = [(await emit_error(aredis, wire_a))[0] for _ in range(3)]
    events = await take(many, 3)
    assert [e.json()["project_id"] for e in events] == [wire_a] * 3
    cursors = [dict(part.split(":", 1) for part in (e.id or "").split(",")) for e in events]
    assert [c[wire_a] for c in cursors] == many_sent and all(len(c) == 2 for c in cursors)
    await many.aclose()


async def test_clients_that_vanish_mid_stream_do_not_disturb_the_others(
        env: Env, aredis: aioredis.Redis) -> None:
    """The hub writes to every client's socket from its own loop: a socket reset or closing
    meanwhile must end that stream only, never the fan-out (nor the gateway)."""
    project = env.project_ids["alpha"]
    readers = [await RawSseReader.open(env.url, "/api/v1/notifications/stream",
                                       env.keys["alpha"]) for _ in range(10)]
    for reader in readers:
        assert [f["event"] for f in await reader.frames()] == ["connected"]
    gone, staying = readers[::2], readers[1::2]
    sent: list[str] = []
    for n, reader in enumerate(gone):
        reader.writer.transport.abort()  # an RST: no FIN, the gateway learns it on writing
        sent.append((await emit_error(aredis, project, message=f"after {n}"))[0])
    sent += [(await emit_error(aredis, project))[0] for _ in range(3)]
    for reader in staying:
        got: list[dict[str, str]] = []
        async with asyncio.timeout(10):
            while len(got) < len(sent):
                got.extend(f for f in await reader.frames() if f["event"] != "heartbeat")
        assert [f["id"] for f in got] == sent
        reader.close()
    await wait_until(lambda: len(env.live.hub.subscriptions) == 0, "every stream ended")
    hub_tasks = [t for t in env.gateway.gateway.tasks if t.get_name() == "gateway-live-pubsub"]
    assert hub_tasks and not any(t.done() for t in hub_tasks)


def test_every_gateway_middleware_is_known_to_pass_live_bodies_through(
        settings: Settings) -> None:
    """The hub's raw writes skip the app's middleware: a new one must be checked and listed in
    ``BODY_TRANSPARENT`` (if it leaves response bodies alone), or live streams quietly take the
    slower ASGI path (``test_a_middleware_that_may_change_bodies_sees_every_live_chunk``)."""
    app = create_app(settings)
    unknown = [m.cls for m in app.user_middleware if m.cls not in BODY_TRANSPARENT]
    assert not unknown, f"check these for what they do to response bodies: {unknown}"


class _TaggingMiddleware:
    """Appends an SSE comment to every non-empty body chunk: a middleware that changes bodies."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def tagging(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": message["body"] + b": tagged\n\n"}
            await send(message)

        await self.app(scope, receive, tagging)


async def test_a_middleware_that_may_change_bodies_sees_every_live_chunk(
        env: Env, aredis: aioredis.Redis) -> None:
    app = create_app(env.gateway.settings)
    app.add_middleware(_TaggingMiddleware)
    gateway = GatewayDaemon(env.gateway.settings.with_overrides(gateway_listen="127.0.0.1:0"),
                            app=app)
    await gateway.start()
    try:
        url = f"http://127.0.0.1:{gateway.port}"
        live: Live = app.state.live
        reader = await RawSseReader.open(url, "/api/v1/notifications/stream",
                                         env.keys["alpha"])
        [sub] = live.hub.subscriptions
        assert isinstance(sub.direct, DirectWriter) and sub.direct.raw is None
        await reader.frames()  # connected
        sent = [(await emit_error(aredis, env.project_ids["alpha"]))[0] for _ in range(3)]
        chunks: list[bytes] = []
        async with asyncio.timeout(10):
            while sum(c.count(b"event: error_notification") for c in chunks) < len(sent):
                size = int(await reader.reader.readuntil(b"\r\n"), 16)
                chunks.append((await reader.reader.readexactly(size + 2))[:-2])
        reader.close()
        assert all(c.endswith(b": tagged\n\n") for c in chunks)
        assert [i for c in chunks for i in sent if f"id: {i}\n".encode() in c] == sent
    finally:
        await gateway.stop()


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


async def test_streams_end_with_a_last_event_and_new_ones_are_refused_while_closing(
        env: Env) -> None:
    """Issue 9 item 5: clients reconnecting during the grace period got new streams that held
    the shutdown for 20 s, which then ended in "timeout graceful shutdown exceeded"."""
    stream = env.source("/api/v1/notifications/stream").stream()
    await connected(stream)
    env.gateway.gateway.closing.set()  # what stop() does first
    [last] = await take(stream, 1, kinds=("closing",))
    assert "shutting down" in last.json()["reason"]
    await stream.aclose()
    headers = {"X-API-Key": env.keys["alpha"]}
    async with env.http.stream("GET", "/api/v1/notifications/stream",
                               headers=headers) as refused:
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await refused.aread()).startswith(b'{"detail":"the gateway is unavailable')
    await env.gateway.stop()
    serving = env.gateway._serving
    assert serving is not None and serving.done() and not serving.cancelled()


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


async def _open_until_connected(http: httpx.AsyncClient, path: str,
                                headers: dict[str, str]) -> tuple[Any, AsyncIterator[str]]:
    """A raw SSE response (no reconnecting client) read up to its ``connected`` event."""
    manager = http.stream("GET", path, headers=headers)
    response = await manager.__aenter__()
    assert response.status_code == 200
    lines = response.aiter_lines()
    async for line in lines:
        if line == "event: connected":
            break
    return manager, lines


async def _ends(lines: AsyncIterator[str]) -> list[str]:
    """Every line left until the server ends the stream (bounded: a hung stream fails)."""

    async def drain() -> list[str]:
        return [line async for line in lines]

    return await asyncio.wait_for(drain(), 10)


async def test_a_revoked_key_ends_its_open_streams(env: Env) -> None:
    auth, _ = await account(env, "revoker@example.com", ("gamma",))
    key = env.keys["gamma"]
    tail, tail_lines = await _open_until_connected(env.http, "/api/v1/logs/tail",
                                                   {"X-API-Key": key})
    notes, note_lines = await _open_until_connected(env.http, "/api/v1/notifications/stream",
                                                    {"X-API-Key": key})
    other, other_lines = await _open_until_connected(env.http, "/api/v1/notifications/stream",
                                                     {"X-API-Key": env.keys["alpha"]})
    revoked = await env.http.delete(f"/api/v1/api-keys/{key.split('_')[1]}", headers=auth)
    assert revoked.status_code == 200, revoked.text
    await _ends(tail_lines)
    await _ends(note_lines)
    # Another key's stream goes on: it still gets the next error.
    await env.ingest("alpha", message="still here")
    async for line in other_lines:
        if "still here" in line:
            break
    for manager in (tail, notes, other):
        await manager.__aexit__(None, None, None)
    again = await env.http.get("/api/v1/logs/tail", headers={"X-API-Key": key})
    assert again.status_code == 401


async def test_logging_out_ends_the_sessions_streams(env: Env) -> None:
    register = await env.http.post("/api/v1/accounts/register", json={
        "email": "leaver@example.com", "password": "correct horse battery"})
    tokens = register.json()
    created = await env.http.post("/api/v1/projects", json={"name": "delta", "slug": "delta"},
                                  headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert created.status_code == 201, created.text
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    stream, lines = await _open_until_connected(env.http, "/api/v1/notifications/stream", bearer)
    out = await env.http.post("/api/v1/accounts/logout",
                              json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204, out.text
    await _ends(lines)
    await stream.__aexit__(None, None, None)
