"""What every daemon checks: its schema at start, PostgreSQL and Redis for its health probe."""

from __future__ import annotations

import asyncio

import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from ledger import bus
from ledger.db import migrate
from ledger.db.pool import connect

# A daemon's whole report must arrive within the gateway's 2 s deadline for it
# (routes/health.py), retries included: otherwise an outage of one dependency reads as the
# daemon itself being unavailable.
HEALTH_TIMEOUT_SECONDS = 1.0


async def require_schema(url: str, database: migrate.Database) -> None:
    """Refuse to start on a database that lacks migrations (MigrationError says what to run)."""

    def check() -> None:
        with connect(url) as conn:
            migrate.require_current(conn, database)  # type: ignore[arg-type]

    await asyncio.to_thread(check)


async def postgres_health(pool: AsyncConnectionPool | None) -> str:
    """``"ok"`` or what is wrong; a health probe reports, it never raises."""
    if pool is None:
        return "not started"
    try:
        await asyncio.wait_for(_select_one_twice(pool), HEALTH_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"error: no answer within {HEALTH_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # any failure is the answer, not an error
        return f"error: {type(exc).__name__}: {exc}"
    return "ok"


async def _select_one_twice(pool: AsyncConnectionPool) -> None:
    try:
        await _select_one(pool)
    except psycopg.OperationalError:
        # A pool that does not check connections (ingest's) may hand out one that died
        # with a PostgreSQL restart; it is discarded now, and a second try gets a fresh one.
        await _select_one(pool)


async def _select_one(pool: AsyncConnectionPool) -> None:
    async with pool.connection(timeout=HEALTH_TIMEOUT_SECONDS) as conn:
        await conn.execute("SELECT 1")


async def redis_health(redis: aioredis.Redis | None) -> str:
    """``"ok"`` or what is wrong; a health probe reports, it never raises."""
    if redis is None:
        return "not started"
    try:
        await asyncio.wait_for(_ping(redis), HEALTH_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"error: no answer within {HEALTH_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # any failure is the answer, not an error
        return f"error: {type(exc).__name__}: {exc}"
    return "ok"


async def _ping(redis: aioredis.Redis) -> None:
    cluster = bus.cluster_of(redis)
    if cluster is None:
        await redis.ping()
        return
    # The masters only: a replica down leaves every slot served, so it must not make a daemon
    # report Redis unhealthy (redis-py's default pings every node, replicas included).
    await cluster.ping(target_nodes=cluster.PRIMARIES)
