"""The live hub against a real Redis: resume without gap or duplicate, isolation, slow clients."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis

from ledger import bus
from ledger.daemons.gateway.live.events import (
    NOTIFICATIONS,
    TAIL,
    Event,
    EventFilter,
    Item,
    Skipped,
    parse_cursor,
    parse_stream_id,
)
from ledger.daemons.gateway.live.hub import Hub, Subscription
from ledger.errors import InvalidInputError
from ledger.queue import names
from tests.live_support import emit_error, emit_log
from tests.waiting import wait_until


@pytest.fixture
async def hub(redis_url: str) -> AsyncIterator[Hub]:
    client = bus.client(redis_url)
    live = Hub(client)
    await live.start()
    yield live
    await live.stop()
    await client.aclose()


def pid() -> str:
    return str(uuid.uuid4())


async def collect(sub: Subscription, n: int, timeout: float = 5.0,
                  first: list[Item] | None = None) -> list[Item]:
    """Items until ``n`` have arrived (failing after ``timeout``)."""
    items = list(first or [])
    deadline = time.monotonic() + timeout
    while len(items) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"got {len(items)} of {n} items: {items}"
        items.extend(await sub.next_batch(min(left, 0.5)))
    return items


def ids(items: list[Item]) -> list[str]:
    return [i.id for i in items if isinstance(i, Event)]


async def test_a_published_error_reaches_the_subscriber(hub: Hub, aredis: aioredis.Redis,
                                                        ) -> None:
    project = pid()
    async with hub.subscribe(NOTIFICATIONS, {project: EventFilter()}) as sub:
        assert await sub.start({}) == []
        event_id, data = await emit_error(aredis, project, message="disk full")
        [item] = await collect(sub, 1)
    assert isinstance(item, Event)
    assert item.id == event_id and item.project_id == project
    assert orjson.loads(item.payload) == data


async def test_resume_replays_exactly_what_was_missed_then_goes_live(
        hub: Hub, aredis: aioredis.Redis) -> None:
    project = pid()
    async with hub.subscribe(NOTIFICATIONS, {project: EventFilter()}) as sub:
        await sub.start({})
        seen, _ = await emit_error(aredis, project)
        await collect(sub, 1)
    missed = [(await emit_error(aredis, project))[0] for _ in range(3)]

    async with hub.subscribe(NOTIFICATIONS, {project: EventFilter()}) as sub:
        replay = await sub.start(parse_cursor(seen, [project]))
        assert ids(replay) == missed
        live, _ = await emit_error(aredis, project)
        items = await collect(sub, 1)
    assert ids(items) == [live]


async def test_no_gap_and_no_duplicate_while_events_race_with_resume(
        hub: Hub, aredis: aioredis.Redis) -> None:
    """Clients resume from different points while a publisher runs flat out."""
    project = pid()
    published: list[str] = []
    first, _ = await emit_error(aredis, project)
    published.append(first)

    async def publish() -> None:
        for _ in range(300):
            published.append((await emit_error(aredis, project))[0])

    async def client(delay: float) -> list[str]:
        await asyncio.sleep(delay)
        cursor = published[len(published) // 2]
        async with hub.subscribe(NOTIFICATIONS, {project: EventFilter()}) as sub:
            items = await sub.start(parse_cursor(cursor, [project]))
            while not ids(items) or ids(items)[-1] != published[-1] or len(published) < 301:
                items.extend(await sub.next_batch(0.2))
            got = ids(items)
        start = published.index(cursor) + 1
        assert got == published[start:], "a resumed client must see every later event once"
        return got

    results = await asyncio.gather(publish(), *(client(d) for d in (0.0, 0.01, 0.03, 0.06)))
    assert all(results[1:])


async def test_a_client_never_receives_another_projects_events(
        hub: Hub, aredis: aioredis.Redis) -> None:
    project_a, project_b = pid(), pid()
    async with hub.subscribe(NOTIFICATIONS, {project_a: EventFilter()}) as sub_a, \
            hub.subscribe(NOTIFICATIONS, {project_b: EventFilter()}) as sub_b:
        await sub_a.start({})
        await sub_b.start({})
        await emit_error(aredis, project_b)
        await emit_error(aredis, project_b)
        mine, _ = await emit_error(aredis, project_a)
        got_a = await collect(sub_a, 1)
        got_b = await collect(sub_b, 2)
        assert await sub_a.next_batch(0.1) == []
    assert ids(got_a) == [mine]
    assert {i.project_id for i in got_b if isinstance(i, Event)} == {project_b}
    # Resuming with B's position does not let A see B either.
    async with hub.subscribe(NOTIFICATIONS, {project_a: EventFilter()}) as sub_a:
        replay = await sub_a.start(parse_cursor(f"{project_b}:0-0", [project_a]))
        assert replay == []


async def test_levels_filter_the_feed(hub: Hub, aredis: aioredis.Redis) -> None:
    project = pid()
    only_critical = {project: EventFilter(levels=frozenset({"critical"}))}
    async with hub.subscribe(NOTIFICATIONS, only_critical) as sub:
        await sub.start({})
        await emit_error(aredis, project, level="error")
        wanted, _ = await emit_error(aredis, project, level="critical")
        assert ids(await collect(sub, 1)) == [wanted]


async def test_a_slow_client_does_not_slow_the_others_and_catches_up_from_the_stream(
        hub: Hub, aredis: aioredis.Redis) -> None:
    project = pid()
    async with hub.subscribe(NOTIFICATIONS, {project: EventFilter()}, queue_size=5) as slow, \
            hub.subscribe(NOTIFICATIONS, {project: EventFilter()}) as fast:
        await slow.start({})
        await fast.start({})
        sent = [(await emit_error(aredis, project))[0] for _ in range(30)]
        assert ids(await collect(fast, 30)) == sent  # while the slow one reads nothing
        got = await collect(slow, 30)
    assert ids(got) == sent
    assert not [i for i in got if isinstance(i, Skipped)]


async def test_a_slow_client_gets_skipped_with_the_count_when_the_stream_lost_them(
        hub: Hub, aredis: aioredis.Redis) -> None:
    project = pid()
    async with hub.subscribe(NOTIFICATIONS, {project: EventFilter()}, queue_size=5) as slow:
        await slow.start({})
        sent = []
        for _ in range(30):
            # An exact cap of 10 stands in for a stream that moved on past the client.
            await aredis.xtrim(names.notifications_stream(project), maxlen=10, approximate=False)
            sent.append((await emit_error(aredis, project))[0])
        await aredis.xtrim(names.notifications_stream(project), maxlen=10, approximate=False)
        got = await collect(slow, 16)
    assert ids(got[:5]) == sent[:5]
    skipped = got[5]
    assert isinstance(skipped, Skipped)
    assert (skipped.count, skipped.reason) == (15, "slow_client")
    assert ids(got[6:]) == sent[20:]


async def test_resuming_from_beyond_the_cap_says_so_before_replaying(
        hub: Hub, aredis: aioredis.Redis) -> None:
    project = pid()
    stream = names.notifications_stream(project)
    old, _ = await emit_error(aredis, project)
    async with aredis.pipeline(transaction=False) as pipe:
        for n in range(1100):
            pipe.xadd(stream, {"data": orjson.dumps({"level": "error", "n": n})},
                      maxlen=NOTIFICATIONS.cap, approximate=False)
        await pipe.execute()
    async with hub.subscribe(NOTIFICATIONS, {project: EventFilter()}) as sub:
        replay = await sub.start(parse_cursor(old, [project]))
    assert isinstance(replay[0], Skipped) and replay[0].reason == "beyond_cap"
    assert len(ids(replay)) == NOTIFICATIONS.cap
    assert [orjson.loads(e.payload)["n"] for e in replay[1:] if isinstance(e, Event)][-1] == 1099


async def test_a_pubsub_blip_is_not_a_gap(hub: Hub, aredis: aioredis.Redis,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ledger.daemons.gateway.live.hub")
    project = pid()
    async with hub.subscribe(NOTIFICATIONS, {project: EventFilter()}) as sub:
        await sub.start({})
        before, _ = await emit_error(aredis, project)
        await collect(sub, 1)
        await aredis.client_kill_filter(_type="pubsub")
        during = [(await emit_error(aredis, project))[0] for _ in range(3)]
        items = await collect(sub, 3, timeout=10)
        after, _ = await emit_error(aredis, project)
        items = await collect(sub, 4, timeout=10, first=items)
    assert before not in ids(items)
    assert ids(items) == [*during, after]
    assert "resubscribed" in caplog.text  # the catch-up path ran, not luck


async def test_the_tail_feeds_only_while_watched_and_filters_levels(
        hub: Hub, aredis: aioredis.Redis) -> None:
    project = pid()
    assert await emit_log(aredis, project) is None  # nobody watches: ingest adds nothing
    warnings = {project: EventFilter(levels=frozenset({"warning"}))}
    async with hub.subscribe(TAIL, {project: EventFilter()}) as everything, \
            hub.subscribe(TAIL, warnings) as only_warnings:
        assert await aredis.exists(names.tail_watchers(project))
        await everything.start({})
        await only_warnings.start({})
        sent = [await emit_log(aredis, project, level=level)
                for level in ("info", "warning", "debug", "warning")]
        assert ids(await collect(everything, 4)) == sent
        assert ids(await collect(only_warnings, 2)) == [sent[1], sent[3]]
    async with hub.subscribe(TAIL, {project: EventFilter()}) as again:
        replay = await again.start(parse_cursor(sent[1], [project]))
    assert ids(replay) == sent[2:]


def test_cursors_name_projects_or_apply_to_all() -> None:
    a, b = pid(), pid()
    assert parse_cursor("17-2", [a, b]) == {a: (17, 2), b: (17, 2)}
    assert parse_cursor(f"{a}:5-1,{b}:6-0", [a]) == {a: (5, 1)}
    assert parse_cursor("", [a]) == {}
    assert parse_stream_id("1700000000000") == (1700000000000, 0)
    with pytest.raises(InvalidInputError, match="bad event id"):
        parse_cursor("yesterday", [a])


async def test_a_topic_nobody_follows_is_dropped_after_lingering(
        redis_url: str, aredis: aioredis.Redis) -> None:
    client = bus.client(redis_url)
    hub = Hub(client, linger_seconds=0.3)
    await hub.start()
    project = pid()
    channel = names.tail_channel(project)

    async def subscribers() -> int:
        return int((await aredis.pubsub_numsub(channel))[0][1])

    try:
        async with hub.subscribe(TAIL, {project: EventFilter()}) as sub:
            await sub.start({})
            assert await subscribers() == 1
        async def unsubscribed() -> bool:
            return not await subscribers()

        await wait_until(unsubscribed, "the idle topic unsubscribed")
        async with hub.subscribe(TAIL, {project: EventFilter()}) as again:
            await again.start({})
            sent = await emit_log(aredis, project)
            assert ids(await collect(again, 1)) == [sent]
    finally:
        await hub.stop()
        await client.aclose()


async def test_a_redis_error_in_a_topic_task_is_retried_and_never_kills_the_hub(
        redis_url: str, aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 9 item 3: one failed read used to kill the topic (503 for every later client), the
    reaper re-raised it and died unwatched, and ``Hub.stop()`` raised it at shutdown."""
    client = bus.client(redis_url)
    hub = Hub(client, linger_seconds=0.3)
    await hub.start()
    project = pid()
    # A key of the wrong type: every read of the tail stream fails with a Redis error.
    await aredis.set(names.tail_stream(project), b"not a stream")
    try:
        with caplog.at_level(logging.WARNING, logger="ledger.daemons.gateway.live.hub"):
            entering = asyncio.create_task(_enter_and_receive(hub, aredis, project))
            await wait_until(lambda: "cannot read the tail" in caplog.text,
                             "the topic logged the failed read")
            await aredis.delete(names.tail_stream(project))
            sent, got = await entering
        assert got == [sent]  # the same topic came back by itself once Redis answered
        # The idle topic is reaped; the hub is still alive and serves a new subscriber.
        await wait_until(lambda: not hub._topics, "the idle topic was reaped")
        assert hub._reaper is not None and not hub._reaper.done()
        sent_again, got_again = await _enter_and_receive(hub, aredis, project)
        assert got_again == [sent_again]
    finally:
        await hub.stop()  # raises nothing
        await client.aclose()


async def _enter_and_receive(hub: Hub, aredis: aioredis.Redis, project: str,
                             ) -> tuple[str | None, list[str]]:
    async with hub.subscribe(TAIL, {project: EventFilter()}) as sub:
        await sub.start({})
        sent = await emit_log(aredis, project)
        return sent, ids(await collect(sub, 1))
