"""Per-key rate limits (DESIGN §4): fixed minute and hour windows in Redis, one round trip.

Each request increments the counter of the current minute and of the current hour of its key;
a counter's first increment sets it to expire just after its window ends. Both happen in one
small Lua script (half the client CPU of a 4-command pipeline, measured). Both keys carry the
key's hash tag (``{key:<key_id>}``), so the script stays on one Redis Cluster slot.
A limit of 0 or less means "no limit" for that window.

Concurrent requests of one key share a round trip: while a key's count is on its way to
Redis, further requests of that key wait and are then counted together (one ``INCRBY n``);
request j of such a group gets the count ``total - n + 1 + j``, exactly what it would have
got alone, so the request that crosses a limit (and only it and later ones) is refused.
A lone request is sent at once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ledger import bus
from ledger.errors import RateLimitedError, UnavailableError


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """Where a key stands after one request: what the ``X-RateLimit-*`` headers say."""

    limit_minute: int
    remaining_minute: int
    limit_hour: int
    remaining_hour: int
    retry_after: int | None = None  # set when the request is over a limit
    exceeded: str | None = None  # "minute" or "hour": the window that refused it

    def _values(self) -> list[tuple[str, int]]:
        """Each header's name and value, in order: the one list both forms are made from."""
        values: list[tuple[str, int]] = []
        if self.limit_minute > 0:
            values += (("X-RateLimit-Limit-Minute", self.limit_minute),
                       ("X-RateLimit-Remaining-Minute", self.remaining_minute))
        if self.limit_hour > 0:
            values += (("X-RateLimit-Limit-Hour", self.limit_hour),
                       ("X-RateLimit-Remaining-Hour", self.remaining_hour))
        if self.retry_after is not None:
            values.append(("Retry-After", self.retry_after))
        return values

    def headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers (and ``Retry-After`` when over a limit)."""
        return {name: str(value) for name, value in self._values()}

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """``headers()`` as an ASGI answer carries them (lower-case names, bytes), in the same
        order: made directly, without the dict Starlette lowercases and encodes per answer
        (the single-log hot path, issue 17)."""
        return [(_RAW_NAMES[name], b"%d" % value) for name, value in self._values()]


_RAW_NAMES = {name: name.lower().encode() for name in (
    "X-RateLimit-Limit-Minute", "X-RateLimit-Remaining-Minute", "X-RateLimit-Limit-Hour",
    "X-RateLimit-Remaining-Hour", "Retry-After")}


# KEYS: minute counter, hour counter.  ARGV: minute TTL, hour TTL, requests counted.
_HIT = """
local n = tonumber(ARGV[3])
local minute = redis.call('INCRBY', KEYS[1], n)
if minute == n then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local hour = redis.call('INCRBY', KEYS[2], n)
if hour == n then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return {minute, hour}
"""


@dataclass(frozen=True, slots=True)
class _Counted:
    """A request's counts in the windows it fell in, and the seconds left in each."""

    minute: int
    hour: int
    minute_left: float
    hour_left: float


class RateLimiter:
    """Counts requests per API key in Redis.

    Args:
        redis: the gateway's Redis client.
        minute_seconds: length of the short window (60; tests shorten it).
        hour_seconds: length of the long window (3600).
        clock: wall-clock seconds; windows are aligned on it so that every gateway agrees.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        minute_seconds: int = 60,
        hour_seconds: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hit = redis.register_script(_HIT)
        self.minute_seconds = minute_seconds
        self.hour_seconds = hour_seconds
        self._clock = clock
        self._busy: set[str] = set()  # keys whose count is on its way to Redis
        self._waiting: dict[str, list[asyncio.Future[_Counted]]] = {}
        self._groups: set[asyncio.Task[None]] = set()

    async def hit(self, key_id: str, limit_minute: int, limit_hour: int) -> RateLimitState:
        """Count one request of ``key_id``; return the state, over a limit or not.

        Raises:
            UnavailableError: Redis cannot be reached (via the Redis client's error).
        """
        counted = await self._count(key_id)
        retry_after: int | None = None
        exceeded: str | None = None
        if 0 < limit_hour < counted.hour:
            retry_after, exceeded = max(1, math.ceil(counted.hour_left)), "hour"
        elif 0 < limit_minute < counted.minute:
            retry_after, exceeded = max(1, math.ceil(counted.minute_left)), "minute"
        return RateLimitState(
            limit_minute=limit_minute,
            remaining_minute=max(0, limit_minute - counted.minute),
            limit_hour=limit_hour,
            remaining_hour=max(0, limit_hour - counted.hour),
            retry_after=retry_after,
            exceeded=exceeded,
        )

    async def _count(self, key_id: str) -> _Counted:
        if key_id in self._busy:
            future: asyncio.Future[_Counted] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key_id, []).append(future)
            return await future
        self._busy.add(key_id)
        try:
            return (await self._increment(key_id, 1))[0]
        finally:
            self._next_group(key_id)

    def _next_group(self, key_id: str) -> None:
        """Count the requests that waited for ``key_id``, together, or free the key."""
        waiting = self._waiting.pop(key_id, None)
        if not waiting:
            self._busy.discard(key_id)
            return
        group = asyncio.create_task(self._count_group(key_id, waiting),
                                    name="gateway-rate-limit-group")
        self._groups.add(group)
        group.add_done_callback(self._groups.discard)

    async def _count_group(self, key_id: str, waiting: list[asyncio.Future[_Counted]]) -> None:
        try:
            counts = await self._increment(key_id, len(waiting))
        except Exception as exc:  # each waiting request gets its own error (a 503 at the edge)
            for future in waiting:
                if not future.done():
                    future.set_exception(_own_error(exc))
        else:
            for future, counted in zip(waiting, counts, strict=True):
                if not future.done():
                    future.set_result(counted)
        finally:
            for future in waiting:
                if not future.done():  # cancelled (shutdown): do not leave them hanging
                    future.cancel()
            self._next_group(key_id)

    async def _increment(self, key_id: str, n: int) -> list[_Counted]:
        """Count ``n`` requests of ``key_id`` at once; the counts of each, in order."""
        now = self._clock()
        minute_bucket = int(now // self.minute_seconds)
        hour_bucket = int(now // self.hour_seconds)
        minute_key = bus.rate_counter(key_id, "m", minute_bucket)
        hour_key = bus.rate_counter(key_id, "h", hour_bucket)
        # Expire one second after the window ends: the counter is gone as soon as it is stale.
        minute_left = (minute_bucket + 1) * self.minute_seconds - now
        hour_left = (hour_bucket + 1) * self.hour_seconds - now
        answer: Any = await self._hit(
            keys=[minute_key, hour_key],
            args=[math.ceil(minute_left) + 1, math.ceil(hour_left) + 1, n])
        minute, hour = int(answer[0]) - n, int(answer[1]) - n
        return [_Counted(minute + j, hour + j, minute_left, hour_left) for j in range(1, n + 1)]


def _own_error(exc: Exception) -> Exception:
    """A fresh exception for one waiting request, caused by the group's ``exc``.

    One instance raised in many tasks would collect every task's traceback and context in
    turn; each request must fail with an error of its own.
    """
    own: Exception
    if isinstance(exc, (RedisError, OSError)):
        own = UnavailableError("Redis failed while counting this key's requests; retry shortly",
                               retry_after=5)
    else:
        own = RuntimeError(f"counting this key's requests failed: {type(exc).__name__}")
    own.__cause__ = exc
    return own


def over_limit_error(state: RateLimitState) -> RateLimitedError:
    """The 429 for a state that is over a limit, saying which one and when to come back."""
    limit = state.limit_hour if state.exceeded == "hour" else state.limit_minute
    return RateLimitedError(
        f"rate limit of {limit} requests per {state.exceeded} exceeded for this API key;"
        f" retry in {state.retry_after} s",
        retry_after=state.retry_after,
    )
