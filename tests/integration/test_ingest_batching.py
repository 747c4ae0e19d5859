"""Coalesced ingest: ``IngestLogsMany`` over real gRPC, and the gateway's batcher end to end.

Ingest runs without writers, so the queue depth says exactly what was queued. Each request of a
coalesced call must get the answer it would have got alone: its own 202, 400, 429 or 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import redis.asyncio as aioredis

from ledger.config import Settings
from ledger.core import accounts, api_keys, projects
from ledger.core.projects import ProjectDefaults
from ledger.core.rpc_models import IngestRequest
from ledger.daemons import auth as auth_daemon
from ledger.daemons import ingest as ingest_daemon
from ledger.daemons.gateway.app import create_app
from ledger.daemons.gateway.routes.ingest_batcher import IngestBatcher
from ledger.daemons.gateway.state import Gateway
from ledger.proto import ingest_pb2
from ledger.queue import names
from ledger.rpc.ingest_client import IngestClient
from tests.ingest_support import BATCH, SINGLE, log, new_project, running_ingest
from tests.ports import free_port

QUEUE_MAX = 10


@pytest.fixture
async def paused(settings: Settings) -> AsyncIterator[IngestClient]:
    """Ingest without writers, its queue capped at ``QUEUE_MAX`` logs per project."""
    async with running_ingest(settings, ingest_writers=0,
                              queue_max_depth=QUEUE_MAX) as (_, client):
        yield client


def request(project_id: str, body: Any, shape: ingest_pb2.IngestShape.ValueType = SINGLE,
            daily_quota: int = 0) -> ingest_pb2.IngestLogsRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return ingest_pb2.IngestLogsRequest(project_id=project_id, shape=shape, body=raw,
                                        retention_days=90, daily_quota=daily_quota)


async def depth(redis: aioredis.Redis, project_id: str) -> int:
    return int(await redis.get(names.queue_depth(project_id)) or 0)


# -- the RPC ------------------------------------------------------------------------------------


async def test_many_answers_each_request_on_its_own(paused: IngestClient,
                                                    aredis: aioredis.Redis) -> None:
    project, other, quota_project = new_project(), new_project(), new_project()
    requests = [
        request(project, log(1)),                                     # 0 queued
        request(project, b'{"level": "info", '),                      # 1 not JSON
        request("not-a-uuid", log(2)),                                # 2 bad project id
        request(project, {"logs": [log(3), log(4, level="nope")]}, BATCH),  # 3 one of two
        request(project, {"logs": [log(i) for i in range(9)]}, BATCH),  # 4 over the depth cap
        request(other, log(5)),                                       # 5 another project
        request(project, log(6, level="nope")),                       # 6 invalid log
        request(quota_project, {"logs": [log(7), log(8)]}, BATCH, daily_quota=3),  # 7 quota 2/3
        request(quota_project, {"logs": [log(9), log(10)]}, BATCH, daily_quota=3),  # 8 over it
        request(project, log(11)),                                    # 9 queued after 4's refusal
    ]
    answer = await paused.call(paused.stub.IngestLogsMany,
                               ingest_pb2.IngestLogsManyRequest(requests=requests))
    results = list(answer.results)
    assert len(results) == len(requests)

    def ok(i: int) -> ingest_pb2.IngestLogsResponse:
        assert not results[i].error_code, (i, results[i].error_message)
        return results[i].response

    assert (ok(0).accepted, ok(0).rejected, len(ok(0).ids)) == (1, 0, 1)
    assert results[1].error_code == "invalid_input" and "JSON" in results[1].error_message
    assert results[2].error_code == "invalid_input" and "UUID" in results[2].error_message
    assert (ok(3).accepted, ok(3).rejected, ok(3).errors[0].index) == (1, 1, 1)
    assert results[4].error_code == "queue_full" and results[4].retry_after == 60
    assert ok(5).accepted == 1
    assert (ok(6).accepted, ok(6).errors[0].field) == (0, "level")
    assert ok(7).accepted == 2
    assert results[8].error_code == "rate_limited" and results[8].retry_after > 0
    assert ok(9).accepted == 1
    # Refused requests queued nothing: 1 + 1 + 1 logs of the project, 1 of the other, 2 quota.
    assert await depth(aredis, project) == 3
    assert await depth(aredis, other) == 1
    assert await depth(aredis, quota_project) == 2
    ids = [i for r in results if not r.error_code for i in r.response.ids]
    assert len(ids) == len(set(ids)) == 6


# -- through the gateway ------------------------------------------------------------------------


@dataclass
class Env:
    app: Any
    http: httpx.AsyncClient
    redis: aioredis.Redis
    project_id: str
    key: str

    @property
    def batcher(self) -> IngestBatcher:
        gateway: Gateway = self.app.state.gateway
        return gateway.batcher

    async def post(self, path: str, body: Any) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.http.post(path, content=content, headers={
            "Content-Type": "application/json", "X-API-Key": self.key})

    async def singles(self, bodies: list[Any]) -> list[httpx.Response]:
        return list(await asyncio.gather(*(self.post("/api/v1/ingest/single", body)
                                           for body in bodies)))


@pytest.fixture
async def env(settings: Settings, aredis: aioredis.Redis) -> AsyncIterator[Env]:
    base = settings.with_overrides(ingest_writers=0, queue_max_depth=QUEUE_MAX * 10)
    auth = auth_daemon.create(base)
    await auth.start()
    ingest = ingest_daemon.create(base)
    try:
        await ingest.start()
        conn = await psycopg.AsyncConnection.connect(str(base.auth_database_url),
                                                     autocommit=True)
        async with conn:
            account = await accounts.register(conn, "batch@example.com", "correct horse battery")
            project = await projects.create_project(
                conn, account_id=account.id, name="Batching", slug="batching",
                defaults=ProjectDefaults(rate_limit_minute=10_000))
            _, key = await api_keys.create_key(conn, project.id, "default")
        app = create_app(base.with_overrides(auth_addr=f"127.0.0.1:{auth.port}",
                                             ingest_addr=f"127.0.0.1:{ingest.port}",
                                             query_addr=f"127.0.0.1:{free_port()}"),
                         rate_windows=(3600, 7200))  # no window ends during a test
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=transport, base_url="http://gateway") as http:
            yield Env(app, http, aredis, project.id, key)
    finally:
        await ingest.stop()
        await auth.stop()


async def test_concurrent_singles_are_coalesced_and_each_answered(env: Env) -> None:
    await env.post("/api/v1/ingest/single", log(0))  # the key is now cached
    calls_before = env.batcher.calls_made
    responses = await env.singles([log(i) for i in range(60)])
    for response in responses:
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 1, "rejected": 0, "message": "log accepted"}
        assert int(response.headers["X-RateLimit-Remaining-Minute"]) < 10_000
    # Each request counted once against the rate limit, whatever group it was counted in.
    remaining = sorted(int(r.headers["X-RateLimit-Remaining-Minute"]) for r in responses)
    assert remaining == list(range(10_000 - 61, 10_000 - 1))
    assert await depth(env.redis, env.project_id) == 61
    calls = env.batcher.calls_made - calls_before
    assert 1 <= calls < 60  # coalesced: fewer calls than requests


async def test_an_invalid_request_gets_its_own_400_among_valid_ones(env: Env) -> None:
    bodies: list[Any] = [log(i) for i in range(20)]
    bodies[5] = log(5, level="nope")
    bodies[12] = b'{"timestamp": '
    bodies[17] = {"logs": [log(17)]}  # a batch body on the single route: not one log
    responses = await env.singles(bodies)
    for i, response in enumerate(responses):
        if i in (5, 12, 17):
            assert response.status_code == 400, (i, response.text)
            assert response.json()["detail"]
        else:
            assert response.status_code == 202, (i, response.text)
    assert "level" in responses[5].json()["detail"]
    assert await depth(env.redis, env.project_id) == 17


async def test_a_full_queue_refuses_only_the_request_that_crosses_it(env: Env) -> None:
    limit = QUEUE_MAX * 10
    batch = {"logs": [log(i) for i in range(limit - 2)]}
    assert (await env.post("/api/v1/ingest/batch", batch)).status_code == 202
    # Two logs of room left: whatever order they are queued in, the 5-log batch cannot fit
    # and both singles can.
    crossing = env.post("/api/v1/ingest/batch", {"logs": [log(i) for i in range(5)]})
    first, second = (env.post("/api/v1/ingest/single", log(i)) for i in (1, 2))
    refused, one, two = await asyncio.gather(crossing, first, second)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "60"
    assert (one.status_code, two.status_code) == (202, 202)
    assert await depth(env.redis, env.project_id) == limit
    over = await env.post("/api/v1/ingest/single", log(3))
    assert over.status_code == 503
    assert await depth(env.redis, env.project_id) == limit


async def test_a_lone_request_is_sent_at_once(env: Env) -> None:
    batcher = env.batcher
    submitted = asyncio.ensure_future(batcher.submit(IngestRequest(
        project_id=env.project_id, shape="single", body=orjson.dumps(log(1)), retention_days=90,
        daily_quota=0)))
    await asyncio.sleep(0)  # submit ran up to its await: the call must already be on its way
    assert batcher.calls_made == 1 and batcher.requests_sent == 1
    assert (await submitted).accepted == 1
