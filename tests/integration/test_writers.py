"""Writers against real Redis and PostgreSQL: poison logs, reclaims, fairness, PostgreSQL away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import psycopg
import pytest
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from ledger.cli.main import app
from ledger.config import Settings
from ledger.daemons.ingest.writer import Streams, Writer
from ledger.db.pool import async_pool
from ledger.queue import names
from ledger.queue.backlog import (
    dead_letters,
    queue_status,
    replay_dead_letters,
    writer_consumers,
)
from ledger.queue.client import Queue
from ledger.rpc.ingest_client import IngestClient
from tests.ingest_support import (
    count_logs,
    error_log,
    fetch_logs,
    log,
    new_project,
    running_ingest,
    send,
    stored,
)
from tests.waiting import wait_until


@pytest.fixture
async def paused(settings: Settings) -> AsyncIterator[IngestClient]:
    """An ingest daemon whose queue only fills: the tests drive writers themselves."""
    async with running_ingest(settings, ingest_writers=0) as (_, client):
        yield client


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    logs = async_pool(str(settings.logs_database_url), name="test-writers", max_size=2)
    await logs.open(wait=True)
    yield logs
    await logs.close()


@contextlib.asynccontextmanager
async def writer(aredis: aioredis.Redis, pool: AsyncConnectionPool, name: str = "test-w0",
                 max_attempts: int = 5) -> AsyncIterator[Writer]:
    stopping = asyncio.Event()
    yield Writer(name, aredis, Queue(aredis), pool, Streams(aredis), max_attempts=max_attempts,
                 stopping=stopping)
    stopping.set()


def _invoke(settings: Settings, args: list[str]) -> Any:
    return CliRunner().invoke(app, args, env=settings.to_env())


async def cli(settings: Settings, *args: str) -> Any:
    """Run ``ledger ...`` (in a thread: the command runs its own event loop)."""
    result = await asyncio.to_thread(_invoke, settings, list(args))
    assert result.exit_code == 0, result.output
    return result


async def test_poison_log_is_isolated_dead_lettered_and_replayed(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    url = str(settings.logs_database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE logs ADD CONSTRAINT no_poison"
                     " CHECK (message IS DISTINCT FROM 'poison')")
    project = new_project()
    logs = [log(i) for i in range(100)]
    logs[37] = error_log(37, message="poison", log_id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    async with running_ingest(settings) as (_, client):
        await send(client, project, {"logs": logs})
        await stored(url, project, 99)
        [letter] = await _dead(aredis, project)
        assert "no_poison" in letter.error and "CheckViolation" in letter.error
        assert letter.log["id"] == "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
        assert (letter.log["message"], letter.log["error_type"]) == ("poison", "KeyError")
        assert letter.components["method"] == "type_message"
        [status] = await queue_status(aredis)
        assert (status.depth, status.length, status.pending, status.dead_letters) == (0, 0, 0, 1)

        listed = orjson.loads((await cli(settings, "queue", "dead-letters", "--json")).stdout)
        assert [d["log"]["id"] for d in listed] == [letter.log["id"]]
        assert "no_poison" in (await cli(settings, "queue", "dead-letters")).stdout

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE logs DROP CONSTRAINT no_poison")
        replayed = orjson.loads((await cli(settings, "queue", "dead-letters", "--replay",
                                           "--project", project, "--json")).stdout)
        assert replayed == {project: {"replayed": 1, "left": 0}}
        await stored(url, project, 100)
        assert await aredis.xlen(names.dead_letters(project)) == 0
        await cli(settings, "queue", "dead-letters", "--replay")  # nothing left: a no-op
    rows = fetch_logs(url, project)
    assert [r["message"] for r in rows].count("poison") == 1
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT event_count FROM error_groups WHERE project_id = %s",
                            (project,)).fetchone() == (1,)


async def _dead(aredis: aioredis.Redis, project: str) -> list[Any]:
    found: list[Any] = await wait_until(lambda: dead_letters(aredis, project),
                                        "a dead letter was recorded")
    return found


async def test_status_cli_shows_depth_and_lag(settings: Settings, paused: IngestClient) -> None:
    project = new_project()
    for _ in range(3):
        await send(paused, project, {"logs": [log(i) for i in range(10)]})
    [status] = orjson.loads((await cli(settings, "queue", "status", "--json")).stdout)
    # The oldest entry was queued a moment ago: its age is small but never negative.
    assert 0 <= status.pop("oldest_age_seconds") < 60
    assert status == {"project_id": project, "depth": 30, "length": 3, "pending": 0, "lag": 3,
                      "dead_letters": 0, "project_slug": None}  # not a project of auth's
    assert project[:8] in (await cli(settings, "queue", "status")).stdout


async def test_dead_writers_entries_are_reclaimed(
    settings: Settings, paused: IngestClient, aredis: aioredis.Redis, pool: AsyncConnectionPool
) -> None:
    project = new_project()
    stream = names.queue_stream(project)
    await send(paused, project, {"logs": [log(i) for i in range(50)]})
    await send(paused, project, {"logs": [log(i) for i in range(50, 60)]})
    await Streams(aredis).refresh(force=True)  # creates the group
    # A writer read both entries, then died without acknowledging them.
    got = await aredis.xreadgroup(names.WRITER_GROUP, "dead-writer", {stream: ">"}, count=10)
    ids = [entry_id for entry_id, _ in got[0][1]]
    async with writer(aredis, pool) as alive:
        assert await alive.claim() == []  # not idle long enough: left to their owner
        assert await alive.step() == 0  # and not new either
        # 60 s of silence, without waiting for it: XCLAIM can set the idle time.
        await aredis.xclaim(stream, names.WRITER_GROUP, "dead-writer", 0, ids, idle=60_000)
        # `ledger status` names the writer that holds them (its idle time counts from the
        # test's XCLAIM, done in its name a moment ago).
        [dead] = await writer_consumers(aredis, [project])
        assert (dead.name, dead.pending, dead.projects) == ("dead-writer", 2, 1)
        assert 0 <= dead.idle_seconds < 30
        claimed = await alive.claim()
        # Delivered by the read, the test's XCLAIM and the reclaim: 3 of the 5 allowed.
        assert [(e.entry_id, e.n, e.deliveries) for e in claimed] == [
            (ids[0].decode(), 50, 3), (ids[1].decode(), 10, 3)]
        assert await alive.handle(claimed) == 60
    await stored(str(settings.logs_database_url), project, 60)
    assert [(c.name, c.pending) for c in await writer_consumers(aredis, [project])] == [
        ("dead-writer", 0), ("test-w0", 0)]
    assert (await aredis.xpending(stream, names.WRITER_GROUP))["pending"] == 0
    assert await aredis.xlen(stream) == 0
    assert int(await aredis.get(names.queue_depth(project))) == 0


async def test_entry_delivered_too_often_is_dead_lettered(
    settings: Settings, paused: IngestClient, aredis: aioredis.Redis, pool: AsyncConnectionPool
) -> None:
    project = new_project()
    stream = names.queue_stream(project)
    await send(paused, project, {"logs": [log(i) for i in range(3)]})
    await Streams(aredis).refresh(force=True)
    got = await aredis.xreadgroup(names.WRITER_GROUP, "crashy", {stream: ">"})
    [entry_id] = [entry_id for entry_id, _ in got[0][1]]
    # Five writers died handling it (say it made them run out of memory).
    await aredis.xclaim(stream, names.WRITER_GROUP, "crashy", 0, [entry_id], idle=60_000,
                        retrycount=5)
    async with writer(aredis, pool, max_attempts=5) as alive:
        assert await alive.step() == 3
    letters = await dead_letters(aredis, project)
    assert [d.log["message"] for d in letters] == ["message 0", "message 1", "message 2"]
    assert all("after 5 deliveries" in d.error for d in letters)
    assert count_logs(str(settings.logs_database_url), project) == 0
    assert int(await aredis.get(names.queue_depth(project))) == 0


async def test_unreadable_entry_is_dead_lettered_and_not_replayed(
    settings: Settings, paused: IngestClient, aredis: aioredis.Redis, pool: AsyncConnectionPool
) -> None:
    project = new_project()
    await send(paused, project, {"logs": [log(i) for i in range(4)]})
    # Something (a bug, a person with redis-cli) queued an entry that is not ours to read.
    await aredis.xadd(names.queue_stream(project), {"n": "2", "rows": "garbage"})
    await aredis.incrby(names.queue_depth(project), 2)
    async with writer(aredis, pool) as alone:
        assert await alone.step() == 6  # the good entry stored, the bad one set aside
    assert count_logs(str(settings.logs_database_url), project) == 4
    [letter] = await dead_letters(aredis, project)
    assert "unreadable queue entry" in letter.error
    queue = Queue(aredis)
    assert await replay_dead_letters(queue, project, max_depth=1000) == (0, 1)
    assert await aredis.xlen(names.dead_letters(project)) == 1  # kept for a person to look at
    assert int(await aredis.get(names.queue_depth(project))) == 0


async def test_restarted_writer_takes_back_its_own_pending_entries(
    settings: Settings, paused: IngestClient, aredis: aioredis.Redis, pool: AsyncConnectionPool
) -> None:
    project = new_project()
    await send(paused, project, {"logs": [log(i) for i in range(20)]})
    await Streams(aredis).refresh(force=True)
    await aredis.xreadgroup(names.WRITER_GROUP, "host:50052:w0",
                            {names.queue_stream(project): ">"})
    async with writer(aredis, pool, name="host:50052:w0") as restarted:
        assert await restarted.recover() == 20  # at once, no 30 s idle wait
    await stored(str(settings.logs_database_url), project, 20)


async def test_busy_project_does_not_starve_a_small_one(
    settings: Settings, paused: IngestClient, aredis: aioredis.Redis, pool: AsyncConnectionPool
) -> None:
    url = str(settings.logs_database_url)
    busy, small = new_project(), new_project()
    for _ in range(12):
        await send(paused, busy, {"logs": [log(i) for i in range(1000)]})
    await send(paused, small, {"logs": [log(i) for i in range(5)]})
    async with writer(aredis, pool) as alone:
        await alone.step()  # one round
    assert count_logs(url, small) == 5
    stored_busy = count_logs(url, busy)
    assert 0 < stored_busy <= 4000  # a few entries of the backlog, not all of it
    assert int(await aredis.get(names.queue_depth(busy))) == 12_000 - stored_busy


async def test_postgres_away_keeps_entries_and_writer_alive(
    settings: Settings, paused: IngestClient, aredis: aioredis.Redis, pool: AsyncConnectionPool
) -> None:
    project = new_project()
    await send(paused, project, {"logs": [log(i) for i in range(30)]})
    await Streams(aredis).refresh(force=True)
    # A pool whose server does not answer: what a writer sees while PostgreSQL is down.
    gone = async_pool("postgresql://ledger@127.0.0.1:9/none?connect_timeout=1", name="gone",
                      min_size=0, max_size=1)
    gone.timeout = 0.5
    await gone.open(wait=False)
    stopping = asyncio.Event()
    down = Writer("w-down", aredis, Queue(aredis), gone, Streams(aredis), max_attempts=5,
                  stopping=stopping)
    failures: list[BaseException] = []
    note_failure = down._note_failure

    def counted(exc: BaseException) -> None:
        failures.append(exc)
        note_failure(exc)

    down._note_failure = counted  # type: ignore[method-assign]
    task = asyncio.create_task(down.run())
    stream = names.queue_stream(project)

    async def holding_and_retried() -> bool:
        pending = await aredis.xpending(stream, names.WRITER_GROUP)
        return bool(pending["pending"]) and len(failures) >= 3

    await wait_until(holding_and_retried, "the writer holds the entry and retried with backoff")
    assert not task.done()
    assert int(await aredis.get(names.queue_depth(project))) == 30
    assert (await aredis.xpending(stream, names.WRITER_GROUP))["pending"] == 1
    stopping.set()
    await asyncio.wait_for(task, 5)  # stops promptly, entries left pending
    await gone.close()
    assert (await aredis.xpending(stream, names.WRITER_GROUP))["pending"] == 1
    # PostgreSQL is back (another writer, after the first one's entries went idle).
    await aredis.xclaim(stream, names.WRITER_GROUP, "w-down", 0,
                        [(await aredis.xrange(stream))[0][0]], idle=60_000)
    async with writer(aredis, pool) as back:
        assert await back.step() == 30
    await stored(str(settings.logs_database_url), project, 30)


async def test_writer_recovers_when_postgres_drops_its_connections(
    settings: Settings, paused: IngestClient, aredis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What a PostgreSQL restart does to the writers' pool, which checks no connection per
    # checkout (ingest's): every idle connection is dead.
    url = str(settings.logs_database_url)
    unchecked = async_pool(url, name="test-unchecked", min_size=2, max_size=2, check=False)
    await unchecked.open(wait=True)
    try:
        project = new_project()
        await send(paused, project, {"logs": [log(i) for i in range(7)]})
        await Streams(aredis).refresh(force=True)
        with psycopg.connect(url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = '' AND pid <> pg_backend_pid()"
                " AND datname = current_database()").fetchone()
        assert killed is not None and killed[0] >= 2
        async with writer(aredis, unchecked) as w:
            assert await asyncio.wait_for(w.step(), 10) == 7
        assert "keeping its entries and retrying" in caplog.text  # it met a dead one first
        assert "writing again" in caplog.text
        await stored(url, project, 7)
    finally:
        await unchecked.close()


async def test_a_log_past_a_program_limit_is_dead_lettered_not_retried_forever(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    # SQLSTATE 54000 (program limit exceeded) is an OperationalError in psycopg, like an
    # outage; it is caused by the row, so it must be isolated like any refused log.
    import secrets

    url = str(settings.logs_database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE INDEX logs_message_btree ON logs (message)")
    project = new_project()
    logs = [log(i) for i in range(20)]
    logs[5] = log(5, message=secrets.token_hex(4000))  # 8 000 random chars: no compression
    async with running_ingest(settings) as (_, client):
        await send(client, project, {"logs": logs})
        await stored(url, project, 19)
        [letter] = await _dead(aredis, project)
    assert "ProgramLimitExceeded" in letter.error and "index row" in letter.error
    assert letter.log["message"] == logs[5]["message"]
