"""The gateway app in process (httpx.ASGITransport) over REAL auth and ingest gRPC daemons.

Ingest runs without writers here, so every accepted log stays in the project's queue: the
queue depth tells exactly what was accepted, and "nothing queued" is checkable.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.routing import APIRoute

from ledger import bus
from ledger.config import Settings
from ledger.core import accounts, api_keys, projects
from ledger.core.projects import Project, ProjectDefaults
from ledger.daemons import auth as auth_daemon
from ledger.daemons import ingest as ingest_daemon
from ledger.daemons import query as query_daemon
from ledger.daemons.gateway import create as create_gateway_daemon
from ledger.daemons.gateway.app import create_app
from ledger.daemons.gateway.edge.breaker import BreakerState, CircuitBreaker
from ledger.daemons.gateway.state import Gateway
from ledger.queue import names
from tests.ports import free_port
from tests.waiting import wait_until

MAX_BODY = 256 * 1024
LIMIT_MINUTE = 1000
QUEUE_MAX = 200  # logs queued per project (ingest runs without writers here)
DAILY_QUOTA = 120  # of the test project; below QUEUE_MAX, so the quota is hit first
CLIENT_IP = "203.0.113.7"


def log(**fields: Any) -> dict[str, Any]:
    return {"timestamp": datetime.now(UTC).isoformat(), "level": "info", "message": "hello",
            **fields}


@dataclass
class Env:
    settings: Settings
    app: FastAPI
    http: httpx.AsyncClient
    conn: psycopg.AsyncConnection[Any]
    redis: aioredis.Redis
    project: Project
    key: str  # ingest + read
    daemons: dict[str, Any]

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway

    async def new_key(self, scopes: list[str] | None = None, **limits: int) -> str:
        _, full_key = await api_keys.create_key(self.conn, self.project.id, "test", scopes,
                                                **limits)
        return full_key

    async def other_project_key(self, slug: str, daily_quota: int) -> tuple[str, str]:
        """(project id, key) of a new project of the same account."""
        project = await projects.create_project(
            self.conn, account_id=self.project.account_id, name=slug, slug=slug,
            defaults=ProjectDefaults(daily_quota=daily_quota))
        _, full_key = await api_keys.create_key(self.conn, project.id, "other")
        return project.id, full_key

    async def post(self, path: str, body: Any, key: str | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if key is not None or self.key:
            sent.setdefault("X-API-Key", key if key is not None else self.key)
        return await self.http.post(path, content=content, headers=sent)

    async def queued(self, project_id: str | None = None) -> int:
        raw = await self.redis.get(names.queue_depth(project_id or self.project.id))
        return int(raw or 0)


async def start_daemon(module: Any, settings: Settings) -> Any:
    daemon = module.create(settings)
    await daemon.start()
    return daemon


@pytest.fixture
async def env(settings: Settings, aredis: aioredis.Redis) -> AsyncIterator[Env]:
    base = settings.with_overrides(ingest_writers=0, gateway_max_body_bytes=MAX_BODY,
                                   queue_max_depth=QUEUE_MAX)
    daemons = {"auth": await start_daemon(auth_daemon, base),
               "ingest": await start_daemon(ingest_daemon, base)}
    gateway_settings = base.with_overrides(
        auth_addr=f"127.0.0.1:{daemons['auth'].port}",
        ingest_addr=f"127.0.0.1:{daemons['ingest'].port}",
        query_addr=f"127.0.0.1:{free_port()}",  # nothing there unless a test starts query
    )
    conn = await psycopg.AsyncConnection.connect(str(base.auth_database_url), autocommit=True)
    account = await accounts.register(conn, "gw@example.com", "correct horse battery")
    project = await projects.create_project(
        conn, account_id=account.id, name="Gateway", slug="gw",
        defaults=ProjectDefaults(daily_quota=DAILY_QUOTA, rate_limit_minute=LIMIT_MINUTE))
    _, key = await api_keys.create_key(conn, project.id, "default")
    app = create_app(gateway_settings,
                     breaker=CircuitBreaker("auth", failure_threshold=2, cooldown_seconds=0.3),
                     rate_windows=(1, 3600), auth_failure_limit=5)
    transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 40000))
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=transport, base_url="http://gateway") as http:
            yield Env(gateway_settings, app, http, conn, aredis, project, key, daemons)
    finally:
        await conn.close()
        for daemon in reversed(list(daemons.values())):
            await daemon.stop()


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text
    return str(body["detail"])


# -- health ---------------------------------------------------------------------------------------


async def test_health_answers_without_auth(env: Env) -> None:
    response = await env.http.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_deep_health_checks_redis_both_databases_and_every_daemon(env: Env) -> None:
    operator = {"X-Ledger-Internal-Token": str(env.settings.internal_token)}
    response = await env.http.get("/health/deep", headers=operator)
    assert response.status_code == 503  # query is not running
    checks = response.json()["checks"]
    assert checks["redis"] == "ok"
    assert checks["auth"] == "ok" and checks["auth.postgres"] == "ok"
    assert checks["ingest"] == "ok" and checks["ingest.postgres"] == "ok"
    assert checks["query"].startswith("unavailable")

    query_port = int(env.settings.query_addr.rsplit(":", 1)[1])
    query = await start_daemon(query_daemon, env.settings.with_overrides(
        query_listen=f"127.0.0.1:{query_port}"))
    try:
        async def deep_ok() -> httpx.Response | None:
            response = await env.http.get("/health/deep", headers=operator)
            return response if response.status_code == 200 else None

        # The gateway's channel reconnects on its own, after its backoff.
        response = await wait_until(deep_ok, "/health/deep is ok once query is back")
        body = response.json()
        assert body["status"] == "ok"
        assert all(value == "ok" for value in body["checks"].values())
        assert {"redis", "auth", "ingest", "query", "query.postgres"} <= set(body["checks"])
    finally:
        await query.stop()


# -- keys -------------------------------------------------------------------------------------


async def test_missing_malformed_unknown_and_wrong_keys_are_401(env: Env) -> None:
    single = "/api/v1/ingest/single"
    detail = assert_error(await env.http.post(single, json=log()), 401)
    assert "X-API-Key" in detail
    before = dict(env.gateway.metrics.key_cache)
    for malformed in (b"ledger_nope", b"ledger_" + b"a" * 10_000, "clé".encode()):
        response = await env.http.post(single, json=log(), headers={"X-API-Key": malformed})
        assert "malformed" in assert_error(response, 401)
    assert dict(env.gateway.metrics.key_cache).get(("redis", "miss")) == before.get(
        ("redis", "miss"))  # refused before any Redis or auth lookup
    assert_error(await env.post(single, log(), key="ledger_zzzzzzzzzzzz_" + "a" * 52), 401)
    key_id, _ = api_keys.parse_key(env.key)
    assert_error(await env.post(single, log(), key=f"ledger_{key_id}_{'b' * 52}"), 401)
    assert_error(await env.http.post(single, json=log(),
                                     headers={"Authorization": "Bearer not-a-key"}), 401)
    assert await env.queued() == 0


async def test_bearer_key_works_like_x_api_key(env: Env) -> None:
    response = await env.http.post("/api/v1/ingest/single", json=log(),
                                   headers={"Authorization": f"Bearer {env.key}"})
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "rejected": 0, "message": response.json()["message"]}


async def test_a_revoked_key_stops_at_every_gateway(env: Env) -> None:
    key = await env.new_key()
    assert (await env.post("/api/v1/ingest/single", log(), key=key)).status_code == 202
    assert len(env.gateway.keys.cache) >= 1  # now served from memory
    key_id, _ = api_keys.parse_key(key)
    await api_keys.revoke_key(env.conn, env.redis, key_id)

    async def refused() -> bool:
        response = await env.post("/api/v1/ingest/single", log(), key=key)
        return response.status_code == 401

    # The in-memory copy would live for minutes: only the published revocation can drop it.
    await wait_until(refused, "the revoked key is refused")
    assert env.gateway.keys.cache.drop_key_id(key_id) == 0  # the revocation dropped it
    assert (await env.post("/api/v1/ingest/single", log())).status_code == 202  # others fine


async def test_concurrent_checks_of_a_key_share_one_lookup(env: Env) -> None:
    # More requests at once than the Redis client has connections (100): when a busy key's
    # memory copy expired, each of them looked it up in Redis and 383 of 512 got a 503
    # "Too many connections" (issue 17). Now they share one lookup.
    key = await env.new_key()
    validator = env.gateway.keys

    async def burst(presented: str, count: int = 150) -> list[httpx.Response]:
        return list(await asyncio.gather(*(env.http.get(
            "/api/v1/settings", headers={"X-API-Key": presented}) for _ in range(count))))

    started = validator.lookups_started
    assert [r.status_code for r in await burst(key)] == [200] * 150
    assert validator.lookups_started - started == 1
    validator.cache.clear()  # the memory copy of a busy key expires
    assert [r.status_code for r in await burst(key)] == [200] * 150
    assert validator.lookups_started - started == 2
    # A check made after a revocation (of any key) does not join a lookup begun before it,
    # which may have read its key before the revocation.
    validator.cache.clear()
    first = asyncio.ensure_future(validator.validate(key, lambda: CLIENT_IP))
    await asyncio.sleep(0)  # its lookup is started and cannot have read Redis yet
    validator.generation += 1  # what a published revocation does
    second = asyncio.ensure_future(validator.validate(key, lambda: CLIENT_IP))
    await asyncio.sleep(0)
    assert validator.lookups_started - started == 4
    assert (await first).key_id == (await second).key_id
    # A wrong key presented many times at once: each request gets its own 401, and the
    # failure is counted once (the same guess, made once).
    key_id, _ = api_keys.parse_key(key)
    wrong = f"ledger_{key_id}_{'b' * 52}"
    refused = await burst(wrong, 4)
    assert [r.status_code for r in refused] == [401] * 4
    assert all(assert_error(r, 401) for r in refused)
    assert await env.redis.get(bus.auth_failures(CLIENT_IP, key_id)) == b"1"


async def test_scopes_are_enforced(env: Env) -> None:
    ingest_only = await env.new_key(["ingest"])
    read_only = await env.new_key(["read"])
    detail = assert_error(await env.http.get("/api/v1/queue/depth",
                                             headers={"X-API-Key": ingest_only}), 403)
    assert "'read'" in detail
    assert_error(await env.post("/api/v1/ingest/single", log(), key=read_only), 403)
    assert (await env.post("/api/v1/ingest/single", log(), key=ingest_only)).status_code == 202
    depth = await env.http.get("/api/v1/queue/depth", headers={"X-API-Key": read_only})
    assert depth.status_code == 200
    assert depth.json() == {"project_id": env.project.id, "queue_depth": 1}
    # /settings is for SDKs, which ship ingest-only keys.
    assert (await env.http.get("/api/v1/settings",
                               headers={"X-API-Key": ingest_only})).status_code == 200


async def test_repeated_failures_from_one_address_are_throttled(env: Env) -> None:
    await env.post("/api/v1/ingest/single", log())  # the good key is now cached in memory
    unknown = "ledger_zzzzzzzzzzzz_" + "a" * 52
    for _ in range(5):
        assert_error(await env.post("/api/v1/ingest/single", log(), key=unknown), 401)
    throttled = await env.post("/api/v1/ingest/single", log(), key=unknown)
    assert_error(throttled, 429)
    assert 1 <= int(throttled.headers["Retry-After"]) <= 300
    # A key already validated keeps working from the same address.
    assert (await env.post("/api/v1/ingest/single", log())).status_code == 202
    # Another address is not affected.
    other = httpx.ASGITransport(app=env.app, client=("198.51.100.1", 1))
    async with httpx.AsyncClient(transport=other, base_url="http://gateway") as http:
        response = await http.post("/api/v1/ingest/single", json=log(),
                                   headers={"X-API-Key": unknown})
        assert_error(response, 401)


async def test_breaker_serves_the_emergency_cache_while_auth_is_down(env: Env) -> None:
    known = await env.new_key()
    assert (await env.post("/api/v1/ingest/single", log(), key=known)).status_code == 202
    # Force the next check past memory and the 5-minute Redis entry, onto auth.
    key_id, _ = api_keys.parse_key(known)
    await env.redis.delete(bus.key_cache(key_id, api_keys.key_digest(known)))
    env.gateway.keys.cache.clear()
    auth = env.daemons["auth"]
    await auth.stop()

    response = await env.post("/api/v1/ingest/single", log(), key=known)
    assert response.status_code == 202, response.text  # from the emergency copy
    never_seen = await env.new_key()  # created in the database, never validated
    assert_error(await env.post("/api/v1/ingest/single", log(), key=never_seen), 503)
    assert env.gateway.keys.breaker.state is BreakerState.OPEN
    metrics = (await env.http.get("/metrics")).text
    assert 'ledger_auth_breaker_state{state="open"} 1' in metrics

    # auth comes back on the same address: after the cooldown one probe closes the circuit.
    port = int(env.settings.auth_addr.rsplit(":", 1)[1])
    env.daemons["auth"] = await start_daemon(auth_daemon, env.settings.with_overrides(
        auth_listen=f"127.0.0.1:{port}"))
    async def accepted() -> bool:
        response = await env.post("/api/v1/ingest/single", log(), key=never_seen)
        assert response.status_code in (202, 503), response.text
        return response.status_code == 202

    await wait_until(accepted, "the breaker closed again", interval=0.1)
    assert env.gateway.keys.breaker.state is BreakerState.CLOSED


# -- rate limits ------------------------------------------------------------------------------


async def test_rate_limit_headers_429_and_next_window(env: Env) -> None:
    key = await env.new_key(rate_limit_minute=3)
    await env.post("/api/v1/ingest/single", log(), key=key)  # validated and cached
    # The test app's "minute" lasts 1 s: start just after a boundary.
    await asyncio.sleep(1 - time.time() % 1 + 0.02)
    remaining = []
    for _ in range(3):
        response = await env.post("/api/v1/ingest/single", log(), key=key)
        assert response.status_code == 202, response.text
        assert response.headers["X-RateLimit-Limit-Minute"] == "3"
        assert response.headers["X-RateLimit-Limit-Hour"]
        remaining.append(response.headers["X-RateLimit-Remaining-Minute"])
    assert remaining == ["2", "1", "0"]
    refused = await env.post("/api/v1/ingest/single", log(), key=key)
    detail = assert_error(refused, 429)
    assert "per minute" in detail
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-RateLimit-Limit-Minute"] == "3"
    assert refused.headers["X-RateLimit-Remaining-Minute"] == "0"
    assert int(refused.headers["X-RateLimit-Limit-Hour"]) > 0
    assert "X-RateLimit-Remaining-Hour" in refused.headers
    await asyncio.sleep(1 - time.time() % 1 + 0.02)
    again = await env.post("/api/v1/ingest/single", log(), key=key)
    assert again.status_code == 202
    assert again.headers["X-RateLimit-Remaining-Minute"] == "2"


async def test_daily_quota_is_429_with_retry_after(env: Env) -> None:
    batch = {"logs": [log(message=f"q{i}") for i in range(50)]}
    for _ in range(2):
        assert (await env.post("/api/v1/ingest/batch", batch)).status_code == 202
    over = await env.post("/api/v1/ingest/batch", batch)  # 150 > DAILY_QUOTA: all refused
    detail = assert_error(over, 429)
    assert "quota" in detail
    assert 1 <= int(over.headers["Retry-After"]) <= 86400
    assert "X-RateLimit-Limit-Minute" in over.headers
    assert await env.queued() == 100


async def test_full_queue_is_503_with_retry_after_60(env: Env) -> None:
    project_id, key = await env.other_project_key("roomy", daily_quota=10_000)
    batch = {"logs": [log(message=f"f{i}") for i in range(150)]}
    assert (await env.post("/api/v1/ingest/batch", batch, key=key)).status_code == 202
    full = await env.post("/api/v1/ingest/batch", batch, key=key)  # 300 > QUEUE_MAX
    assert_error(full, 503)
    assert full.headers["Retry-After"] == "60"
    assert await env.queued(project_id) == 150


# -- ingest -----------------------------------------------------------------------------------


async def test_single_and_batch_are_queued(env: Env) -> None:
    response = await env.post("/api/v1/ingest/single", log(extra_field={"new": "sdk"}))
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 0) and isinstance(body["message"], str)
    assert response.headers["content-type"] == "application/json"
    batch = {"logs": [log(message="a"), log(level="nope"), log(message="c", future_field=1)],
             "sdk": "unknown top-level fields are ignored too"}
    response = await env.post("/api/v1/ingest/batch", batch)
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "level")]
    assert await env.queued() == 3


async def test_batch_with_no_valid_log_is_400_with_item_errors(env: Env) -> None:
    response = await env.post("/api/v1/ingest/batch",
                              {"logs": [log(level="nope"), {"message": "no timestamp"}]})
    detail = assert_error(response, 400)
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (0, 2)
    assert [e["index"] for e in body["errors"]] == [0, 1]
    assert detail
    assert await env.queued() == 0


async def test_gzip_body_is_accepted(env: Env) -> None:
    batch = orjson.dumps({"logs": [log(message=f"z{i}") for i in range(100)]})
    response = await env.post("/api/v1/ingest/batch", gzip.compress(batch),
                              headers={"Content-Encoding": "gzip"})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 100


async def test_gzip_bomb_and_oversized_bodies_are_413(env: Env) -> None:
    bomb = gzip.compress(b" " * (100 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < MAX_BODY
    detail = assert_error(await env.post("/api/v1/ingest/batch", bomb,
                                         headers={"Content-Encoding": "gzip"}), 413)
    assert "decompression" in detail
    big = orjson.dumps({"logs": [log(message="x" * 9000) for _ in range(30)]})
    assert len(big) > MAX_BODY
    assert_error(await env.post("/api/v1/ingest/batch", big), 413)
    assert_error(await env.post("/api/v1/ingest/batch", b"\x1f\x8b not really gzip",
                                headers={"Content-Encoding": "gzip"}), 400)
    assert await env.queued() == 0


BAD_BODIES: list[tuple[str, str, bytes, dict[str, str], int]] = [
    ("malformed JSON", "single", b'{"timestamp": "2025-01-01T00:00:00Z", "level": ', {}, 400),
    ("not an object", "single", b"[1, 2, 3]", {}, 400),
    ("wrong types", "single", orjson.dumps({"timestamp": [], "level": 5}), {}, 400),
    ("deep JSON", "single", b"[" * 10_000 + b"]" * 10_000, {}, 400),
    ("deep attributes", "single",
     orjson.dumps(log())[:-1] + b', "attributes": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
     {}, 400),
    ("raw NUL byte", "single", b'{"level": "info",\x00 "timestamp": 1}', {}, 400),
    ("empty body", "single", b"", {}, 400),
    ("empty batch body", "batch", b"", {}, 400),
    ("batch not a list", "batch", orjson.dumps({"logs": "x"}), {}, 400),
    ("batch without logs", "batch", orjson.dumps({"items": [log()]}), {}, 400),
    ("empty batch", "batch", orjson.dumps({"logs": []}), {}, 400),
    ("1001 items", "batch", orjson.dumps({"logs": [log() for _ in range(1001)]}), {}, 400),
    ("form content type", "single", orjson.dumps(log()),
     {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ("text content type", "batch", orjson.dumps({"logs": [log()]}),
     {"Content-Type": "text/plain"}, 415),
    ("unknown encoding", "single", orjson.dumps(log()), {"Content-Encoding": "br"}, 415),
]


async def test_bad_input_is_a_clear_4xx_and_queues_nothing(env: Env) -> None:
    for what, shape, body, headers, status in BAD_BODIES:
        response = await env.post(f"/api/v1/ingest/{shape}", body, headers=headers)
        assert response.status_code == status, (what, response.text)
        detail = assert_error(response, status)
        assert len(detail) < 2000, what
        assert await env.queued() == 0, what


async def test_nul_characters_and_invalid_utf8_are_cleaned_not_refused(env: Env) -> None:
    nul = await env.post("/api/v1/ingest/single", log(message="a\u0000b"))
    assert nul.status_code == 202, nul.text
    raw = orjson.dumps(log(message="PLACEHOLDER")).replace(b"PLACEHOLDER", b"bad \xff\xfe utf8")
    invalid = await env.post("/api/v1/ingest/single", raw)
    assert invalid.status_code == 202, invalid.text
    assert await env.queued() == 2


async def test_queue_depth_and_settings(env: Env) -> None:
    await env.post("/api/v1/ingest/batch", {"logs": [log(), log()]})
    depth = await env.http.get("/api/v1/queue/depth", headers={"X-API-Key": env.key})
    assert depth.json() == {"project_id": env.project.id, "queue_depth": 2}
    assert depth.headers["X-RateLimit-Limit-Minute"] == str(LIMIT_MINUTE)
    response = await env.http.get("/api/v1/settings", headers={"X-API-Key": env.key})
    assert response.status_code == 200
    body = response.json()
    assert (body["project_id"], body["project_name"], body["project_slug"]) == (
        env.project.id, "Gateway", "gw")
    assert body["scopes"] == ["ingest", "read"]
    assert (body["rate_limit_minute"], body["daily_quota"]) == (LIMIT_MINUTE, DAILY_QUOTA)
    assert body["max_body_bytes"] == MAX_BODY
    constraints = body["constraints"]
    assert constraints["levels"] == ["debug", "info", "warning", "error", "critical"]
    assert constraints["max_batch_items"] == 1000
    assert constraints["max_chars"]["message"] == 10_000


# -- errors, metrics, OpenAPI -----------------------------------------------------------------


async def test_unexpected_errors_are_a_bare_500(env: Env) -> None:
    async def explode() -> None:
        raise RuntimeError("secret internals")

    env.app.add_api_route("/test-explode", explode)
    response = await env.http.get("/test-explode")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert_error(await env.http.get("/no/such/route"), 404)


async def test_metrics_are_prometheus_text(env: Env) -> None:
    await env.post("/api/v1/ingest/batch", {"logs": [log(), log(level="nope")]})
    await env.post("/api/v1/ingest/single", log())
    response = await env.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert ('ledger_http_requests_total{route="/api/v1/ingest/batch",method="POST",status="202"}'
            ' 1') in text
    assert 'ledger_ingest_logs_total{outcome="accepted"} 2' in text
    assert 'ledger_ingest_logs_total{outcome="rejected"} 1' in text
    assert 'ledger_key_cache_lookups_total{layer="memory",result="hit"} 1' in text
    assert 'ledger_key_cache_lookups_total{layer="memory",result="miss"} 1' in text
    assert 'ledger_auth_breaker_state{state="closed"} 1' in text
    for line in text.splitlines():
        assert line.startswith(("# HELP ledger_", "# TYPE ledger_", "ledger_")), line


async def test_openapi_describes_every_route_and_the_ingest_bodies(env: Env) -> None:
    spec = (await env.http.get("/openapi.json")).json()
    paths = spec["paths"]
    for route in env.app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in route.methods:
                assert method.lower() in paths[route.path], (method, route.path)
    schemas = spec["components"]["schemas"]
    for shape, model in (("single", "LogRecord"), ("batch", "IngestBatchRequest")):
        operation = paths[f"/api/v1/ingest/{shape}"]["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{model}"
        assert {"202", "400", "401", "403", "413", "429", "503"} <= set(operation["responses"])
    record = schemas["LogRecord"]
    assert record["required"] == ["timestamp", "level"]
    assert record["additionalProperties"] is True
    assert set(record["properties"]) >= {
        "timestamp", "level", "log_type", "importance", "message", "error_type",
        "error_message", "stack_trace", "environment", "release", "sdk_version", "platform",
        "platform_version", "attributes", "log_id", "trace_id", "span_id", "fingerprint"}
    assert record["properties"]["level"]["enum"] == ["debug", "info", "warning", "error",
                                                     "critical"]
    batch = schemas["IngestBatchRequest"]["properties"]["logs"]
    assert (batch["minItems"], batch["maxItems"]) == (1, 1000)

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(spec):
        assert ref.rsplit("/", 1)[1] in schemas, ref  # every reference resolves


# -- the daemon -------------------------------------------------------------------------------


async def test_daemon_serves_http_on_its_port_and_stops(env: Env) -> None:
    daemon = create_gateway_daemon(env.settings)
    await daemon.start()
    try:
        assert daemon.port > 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.port}") as http:
            assert (await http.get("/health")).status_code == 200
            response = await http.post("/api/v1/ingest/single", json=log(),
                                       headers={"X-API-Key": env.key})
            assert response.status_code == 202, response.text
    finally:
        await daemon.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{daemon.port}/health")

