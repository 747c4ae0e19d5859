"""Connections: one async pool per daemon and database; short sync connections for the CLI."""

from __future__ import annotations

import logging

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ledger.config import masked
from ledger.errors import UnavailableError

logger = logging.getLogger(__name__)


def async_pool(url: str, *, name: str, min_size: int = 1, max_size: int = 8,
               check: bool = True) -> AsyncConnectionPool:
    """A pool that is not yet open: the daemon opens it at start and closes it at shutdown.

    Args:
        url: The database URL.
        name: The pool's name in logs.
        min_size: Connections kept open.
        max_size: Connections at most.
        check: Test each connection (one round trip) before handing it out. Callers that retry
            a failed step anyway (the ingest writers) turn it off: a dead connection then
            raises once, is discarded when returned, and the retry gets a fresh one.
    """
    return AsyncConnectionPool(
        url,
        name=name,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True},
        timeout=10.0,
        # A restarted PostgreSQL leaves dead connections in the pool: check before handing out.
        check=AsyncConnectionPool.check_connection if check else None,
    )


async def open_pool(pool: AsyncConnectionPool, url: str) -> None:
    """Open ``pool`` and wait for its first connection, or raise a clear ``UnavailableError``."""
    try:
        await pool.open(wait=True, timeout=10.0)
    except Exception as exc:  # psycopg_pool raises PoolTimeout carrying the last connect error
        await pool.close()
        raise UnavailableError(f"cannot connect to PostgreSQL at {masked(url)}: {exc}") from exc


def connect(url: str, *, dict_rows: bool = False) -> psycopg.Connection[object]:
    """A synchronous connection for the CLI and migrations, with an error fit for a user."""
    try:
        if dict_rows:
            return psycopg.connect(url, autocommit=True, connect_timeout=5,
                                   row_factory=dict_row)
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UnavailableError(
            f"cannot connect to PostgreSQL at {masked(url)}: {reason}"
            " (is it running? is the URL right?)"
        ) from exc


def with_database(url: str, database: str) -> str:
    """``url`` (a postgresql:// URL) pointing at another database on the same server."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))
