"""Ingest's side of grouping: the per-project setting cache against a real database (and one
that is not there), and big requests prepared off the event loop (issue 9, item 1)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool

from ledger import bus
from ledger.config import Settings
from ledger.core import grouping_store
from ledger.core.grouping_rules import DEFAULT_GROUPING
from ledger.daemons.ingest import service
from ledger.daemons.ingest.grouping import GroupingCache
from ledger.daemons.ingest.service import PREPARE_INLINE_BYTES
from ledger.queue import names
from tests.ingest_support import error_log, log, running_ingest, send
from tests.ports import free_port
from tests.waiting import wait_until


async def test_the_cache_reads_rules_and_merges_and_rereads_after_its_ttl(
        settings: Settings) -> None:
    project = str(uuid.uuid4())
    url = settings.logs_database_url or ""
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        cache = GroupingCache(pool, ttl=0.0)
        assert (await cache.get(project)).rules == ()
        async with pool.connection() as conn:
            await grouping_store.add_rule(conn, project, "level:error -> errors")
        config = await cache.get(project)
        assert [r.text for r in config.rules] == ["level:error -> errors"]
        assert config.revision == 1
        held = GroupingCache(pool, ttl=3600.0)
        await held.get(project)
        async with pool.connection() as conn:
            await grouping_store.remove_rule(conn, project, 0)
        assert (await held.get(project)).revision == 1  # within the TTL: the copy it read
        held.forget(project)
        assert (await held.get(project)).revision == 2


async def test_without_a_database_ingest_goes_on_with_the_default() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/none?connect_timeout=1"
    async with AsyncConnectionPool(url, min_size=0, max_size=1, open=False) as pool:
        cache = GroupingCache(pool, timeout=0.2, first_timeout=0.5)
        many = await cache.get_many([str(uuid.uuid4()), str(uuid.uuid4())])
    assert list(many.values()) == [DEFAULT_GROUPING, DEFAULT_GROUPING]


async def test_a_big_request_is_prepared_while_the_event_loop_runs(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Observable without a clock: the big request's preparation is held until a small request
    # sent meanwhile has been answered, which the daemon (on the test's event loop) can only do
    # if the preparation runs off the loop.
    project = str(uuid.uuid4())
    trace = "TypeError: boom\n" + "".join(
        f"    at handler{i} (/srv/app/src/file{i}.js:{i}:17)\n" for i in range(900))
    big = {"logs": [error_log(i, stack_trace=trace[:49_000]) for i in range(200)]}
    assert len(orjson.dumps(big)) > PREPARE_INLINE_BYTES
    started, release = threading.Event(), threading.Event()
    real_prepare = service.prepare

    def prepare(project_id: str, shape: int, body: bytes, **kwargs: Any) -> service.Prepared:
        if len(body) > PREPARE_INLINE_BYTES:
            started.set()
            # Held until the small request has its answer. Were this running on the event loop,
            # nothing else could be answered meanwhile: the wait would run out first and the
            # big request would be done before the small one, which the test refuses.
            release.wait(30)
        return real_prepare(project_id, shape, body, **kwargs)

    monkeypatch.setattr(service, "prepare", prepare)
    async with running_ingest(settings, ingest_writers=0) as (_, client):
        big_task = asyncio.create_task(send(client, project, big))
        await wait_until(started.is_set, "the big request's preparation started",
                         interval=0.001)
        small = await send(client, project, {"logs": [log(1)]})
        assert small.accepted == 1
        assert not big_task.done()  # answered while the big request was still being prepared
        release.set()
        assert (await big_task).accepted == 200
    redis = bus.client(settings.redis_url or "")
    try:
        entries = await redis.xrange(names.queue_stream(project))
    finally:
        await redis.aclose()
    assert sorted(int(fields[b"n"]) for _, fields in entries) == [1, 200]
