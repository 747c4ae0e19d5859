"""What `ledger accounts|projects|keys` share: one run against the auth database and Redis.

These commands work on the auth database directly (no daemon needs to be running), with the
settings of the environment or of a local `ledger up`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ledger.cli.context import load_settings, reaching_the_stack

if TYPE_CHECKING:
    import psycopg
    import redis.asyncio as aioredis

    from ledger.config import Settings

T = TypeVar("T")

Operation = Callable[["psycopg.AsyncConnection[Any]", "aioredis.Redis"], Awaitable[T]]


def run_auth(operation: Operation[T], settings: Settings | None = None) -> T:
    """Run ``operation(conn, redis)`` on one auth-database connection and one Redis client."""
    import asyncio

    from ledger.core.connections import auth_connections

    settings = settings or load_settings()
    quiet_core_logs()

    async def main() -> T:
        async with auth_connections(settings) as (conn, redis):
            return await operation(conn, redis)

    with reaching_the_stack():
        return asyncio.run(main())


def quiet_core_logs() -> None:
    """The operations' INFO lines are for daemons' logs; a command says what it did itself."""
    import logging

    core = logging.getLogger("ledger.core")
    if not core.isEnabledFor(logging.DEBUG):  # --verbose keeps them
        core.setLevel(logging.WARNING)


def when(value: datetime | None, empty: str = "") -> str:
    """A timestamp for a table: local time to the minute."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else empty


def gateway_host(settings: Settings) -> str:
    """``host:port`` that applications reach the gateway at, for DSNs (from its listen address).

    A wildcard listen address (``0.0.0.0``, ``::``) says nothing about the name clients use,
    so ``localhost`` stands in for it.
    """
    host, _, port = settings.gateway_listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"
