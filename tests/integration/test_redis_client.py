"""The daemons' Redis client (``bus.client``) against a real Redis: a burst of commands.

redis-py 6 and later bound a client's pool at 100 connections and fail a command past that
("Too many connections"). A gateway sends one command per busy key at once (the rate-limit
round trips of many keys, the lookups of many keys whose memory copy expired), so a burst of
more than 100 must wait for a free connection, not fail.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
import redis.asyncio as aioredis

from ledger import bus


@pytest.mark.parametrize("resend", [True, False])
async def test_a_burst_past_the_pool_waits_for_connections(redis_url: str, aredis: aioredis.Redis,
                                                          resend: bool) -> None:
    # Named connections, so that the server can say how many this client opened (the
    # Redis server is shared with other tests).
    name = f"burst-{secrets.token_hex(4)}"
    assert "?" not in redis_url
    client = bus.client(f"{redis_url}?client_name={name}", resend=resend)
    burst = 3 * bus.MAX_CONNECTIONS
    prefix = f"ledger:test:{name}:"
    try:
        counts = await asyncio.gather(*(client.incr(f"{prefix}{i}") for i in range(burst)))
        assert counts == [1] * burst  # every command ran, each once
        opened = [c for c in await aredis.client_list() if c.get("name") == name]
        # More than one connection served the burst, never more than the bound: the other
        # commands waited their turn.
        assert 1 < len(opened) <= bus.MAX_CONNECTIONS
        await client.delete(*(f"{prefix}{i}" for i in range(burst)))
    finally:
        await client.aclose()
