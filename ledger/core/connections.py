"""Short-lived connections to the auth database and Redis, for the CLI and `ledger up`.

Daemons keep a pool instead; commands that run once need one connection, opened with an error
fit for a person when PostgreSQL or Redis cannot be reached.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import redis.asyncio as aioredis
import redis.exceptions

from ledger import bus
from ledger.config import Settings, masked
from ledger.db.pool import use_ledger_json
from ledger.errors import UnavailableError


async def connect_postgres(url: str) -> psycopg.AsyncConnection[Any]:
    """An autocommit connection, or ``UnavailableError`` that says what to check."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        text = str(exc).strip()
        reason = text.splitlines()[-1] if text else type(exc).__name__
        raise UnavailableError(f"cannot connect to PostgreSQL at {masked(url)}: {reason}"
                               " (is it running? is the URL right?)") from exc
    use_ledger_json(conn)
    return conn


async def connect_redis(url: str, *, resend: bool = True) -> aioredis.Redis:
    """A client that answered a PING, or ``UnavailableError`` (``resend``: see ``bus.client``)."""
    client = bus.client(url, resend=resend)
    try:
        await client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        await client.aclose()
        raise UnavailableError(f"cannot connect to Redis at {masked(url)}: {exc}"
                               " (is it running? is the URL right?)") from exc
    return client


@contextlib.asynccontextmanager
async def auth_connections(
    settings: Settings,
) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], aioredis.Redis]]:
    """One auth database connection and one Redis client, closed on exit.

    Raises:
        ConfigError: LEDGER_AUTH_DATABASE_URL or LEDGER_REDIS_URL is unset.
        UnavailableError: either cannot be reached.
    """
    settings.require("auth_database_url", "redis_url")
    assert settings.auth_database_url and settings.redis_url
    conn = await connect_postgres(settings.auth_database_url)
    try:
        client = await connect_redis(settings.redis_url)
        try:
            yield conn, client
        finally:
            await client.aclose()
    finally:
        await conn.close()
