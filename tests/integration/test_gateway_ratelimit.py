"""Per-key rate limits against real Redis: counting, headers, and counters that expire."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from ledger import bus
from ledger.daemons.gateway.edge.rate_limits import RateLimiter, over_limit_error
from ledger.errors import UnavailableError
from tests.ports import free_port
from tests.waiting import wait_until


async def test_counts_per_window_and_refuses_past_the_limit(aredis: aioredis.Redis) -> None:
    limiter = RateLimiter(aredis)
    states = [await limiter.hit("k1", 3, 100) for _ in range(4)]
    assert [s.remaining_minute for s in states] == [2, 1, 0, 0]
    assert [s.remaining_hour for s in states] == [99, 98, 97, 96]
    assert [s.retry_after is None for s in states] == [True, True, True, False]
    over = states[-1]
    assert over.exceeded == "minute"
    assert over.retry_after is not None and 1 <= over.retry_after <= 60
    assert over.headers() == {
        "X-RateLimit-Limit-Minute": "3", "X-RateLimit-Remaining-Minute": "0",
        "X-RateLimit-Limit-Hour": "100", "X-RateLimit-Remaining-Hour": "96",
        "Retry-After": str(over.retry_after),
    }
    error = over_limit_error(over)
    assert error.http_status == 429 and error.retry_after == over.retry_after
    assert "3 requests per minute" in error.message
    # Another key has its own counters.
    assert (await limiter.hit("k2", 3, 100)).remaining_minute == 2


async def test_hour_limit_wins_when_both_are_exceeded(aredis: aioredis.Redis) -> None:
    limiter = RateLimiter(aredis)
    await limiter.hit("k", 1, 1)
    state = await limiter.hit("k", 1, 1)
    assert state.exceeded == "hour"
    assert "per hour" in over_limit_error(state).message


async def test_counters_expire_with_their_window(aredis: aioredis.Redis) -> None:
    limiter = RateLimiter(aredis, minute_seconds=60, hour_seconds=3600)
    await limiter.hit("k", 10, 10)
    now = time.time()
    minute_key = bus.rate_counter("k", "m", int(now // 60))
    hour_key = bus.rate_counter("k", "h", int(now // 3600))
    assert 0 < await aredis.ttl(minute_key) <= 62
    assert 0 < await aredis.ttl(hour_key) <= 3602


async def test_a_refused_key_is_served_again_in_the_next_window(aredis: aioredis.Redis) -> None:
    limiter = RateLimiter(aredis, minute_seconds=1, hour_seconds=3600)
    # Start right after a window boundary so that two hits land in the same second.
    await asyncio.sleep(1 - time.time() % 1 + 0.01)
    await limiter.hit("k", 1, 1000)
    refused = await limiter.hit("k", 1, 1000)
    assert refused.retry_after == 1
    stale = bus.rate_counter("k", "m", int(time.time()))
    await asyncio.sleep(1 - time.time() % 1 + 0.01)
    assert (await limiter.hit("k", 1, 1000)).retry_after is None
    # The old window's counter is gone (it expires at the end of its window).
    await wait_until(lambda: _gone(aredis, stale), "the old window's counter expired")


async def _gone(aredis: aioredis.Redis, key: str) -> bool:
    return not await aredis.exists(key)


async def test_zero_means_no_limit(aredis: aioredis.Redis) -> None:
    limiter = RateLimiter(aredis)
    for _ in range(3):
        state = await limiter.hit("k", 0, 0)
    assert state.retry_after is None
    assert state.headers() == {}


async def test_each_request_of_a_failed_group_gets_an_error_of_its_own() -> None:
    # A Redis nobody listens on: the lone request and the group that waited behind it fail.
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    limiter = RateLimiter(dead)
    try:
        answers = await asyncio.gather(*(limiter.hit("k1", 10, 100) for _ in range(6)),
                                       return_exceptions=True)
    finally:
        await dead.aclose()
    assert all(isinstance(answer, Exception) for answer in answers), answers
    assert len({id(answer) for answer in answers}) == len(answers)
    waited = [a for a in answers if isinstance(a, UnavailableError)]
    assert len(waited) == 5 and all(a.http_status == 503 for a in waited)
