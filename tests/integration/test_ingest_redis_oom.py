"""Issue 9 items 7 and 8: Redis out of memory in the middle of a coalesced call.

Redis under ``maxmemory-policy noeviction`` refuses writes once full. Each request of a coalesced
``IngestLogsMany`` keeps its own answer: the malformed one its 400, the one without a valid log
its answer, each one Redis refused a 503 (``unavailable``, Retry-After, naming Redis) with
nothing of it queued; and once Redis has room again the same logs are accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis

from ledger.config import Settings
from ledger.core import accounts, api_keys, projects
from ledger.daemons import auth as auth_daemon
from ledger.daemons import ingest as ingest_daemon
from ledger.daemons.gateway.app import create_app
from ledger.embedded import EmbeddedRedis
from ledger.proto import ingest_pb2
from ledger.queue import names
from ledger.rpc.ingest_client import IngestClient
from tests.ingest_support import log, new_project, running_ingest
from tests.integration.test_ingest_batching import BATCH, request
from tests.ports import free_port


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own: its memory limit changes nobody else's."""
    server = EmbeddedRedis(tmp_path / "redis")
    yield server.start()
    server.stop()


async def test_out_of_memory_refuses_only_the_requests_it_met(
        settings: Settings, private_redis: str) -> None:
    project = new_project()
    redis = aioredis.Redis.from_url(private_redis)
    async with running_ingest(settings, redis_url=private_redis, ingest_writers=0) as (_, client):
        await _many(client, [request(project, log(0))])  # the project is known, scripts loaded
        await redis.config_set("maxmemory", 1)  # full: every write is refused
        results = await _many(client, [
            request(project, log(1)),
            request(project, b'{"level": '),                # not JSON
            request(project, log(2, level="nope")),         # no valid log: nothing to queue
            request(project, {"logs": [log(i) for i in range(3, 8)]}, BATCH),
        ])
        for refused in (results[0], results[3]):
            assert refused.error_code == "unavailable", refused
            assert refused.retry_after > 0 and "Redis" in refused.error_message
        assert results[1].error_code == "invalid_input"
        assert not results[2].error_code and results[2].response.rejected == 1
        assert int(await redis.get(names.queue_depth(project)) or 0) == 1  # the first call's
        await redis.config_set("maxmemory", 0)
        again = await _many(client, [request(project, log(1))])
        assert not again[0].error_code and again[0].response.accepted == 1
    await redis.aclose()


async def _many(client: IngestClient, requests: list[ingest_pb2.IngestLogsRequest],
                ) -> list[ingest_pb2.IngestLogsResult]:
    answer = await client.call(client.stub.IngestLogsMany,
                               ingest_pb2.IngestLogsManyRequest(requests=requests))
    return list(answer.results)


async def test_the_gateway_answers_503_naming_redis_when_redis_is_full(
        settings: Settings, private_redis: str) -> None:
    """Out of memory used to be a 500 at the gateway (only connection errors were 503)."""
    base = settings.with_overrides(redis_url=private_redis, ingest_writers=0)
    auth, ingest = auth_daemon.create(base), ingest_daemon.create(base)
    await auth.start()
    await ingest.start()
    redis = aioredis.Redis.from_url(private_redis)
    try:
        conn = await psycopg.AsyncConnection.connect(str(base.auth_database_url),
                                                     autocommit=True)
        async with conn:
            account = await accounts.register(conn, "oom@example.com", "correct horse battery")
            project = await projects.create_project(conn, account_id=account.id, name="OOM",
                                                    slug="oom")
            _, key = await api_keys.create_key(conn, project.id, "default")
        app = create_app(base.with_overrides(auth_addr=f"127.0.0.1:{auth.port}",
                                             ingest_addr=f"127.0.0.1:{ingest.port}",
                                             query_addr=f"127.0.0.1:{free_port()}"))
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=transport, base_url="http://gateway") as http:
            headers = {"X-API-Key": key}
            ok = await http.post("/api/v1/ingest/single", json=log(0), headers=headers)
            assert ok.status_code == 202, ok.text
            await redis.config_set("maxmemory", 1)
            full = await http.post("/api/v1/ingest/single", json=log(1), headers=headers)
            assert full.status_code == 503, full.text
            assert full.json()["detail"].startswith("Redis is unavailable")
            assert int(full.headers["Retry-After"]) > 0
            await redis.config_set("maxmemory", 0)
            again = await http.post("/api/v1/ingest/single", json=log(1), headers=headers)
            assert again.status_code == 202, again.text
        assert int(await redis.get(names.queue_depth(project.id)) or 0) == 2
    finally:
        await redis.aclose()
        await ingest.stop()
        await auth.stop()
