"""Connections: one async pool per daemon and database; short sync connections for the CLI."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from ledger.config import masked
from ledger.errors import UnavailableError

logger = logging.getLogger(__name__)


def read_json(data: bytes | str) -> Any:
    """How every Ledger connection decodes json/jsonb: the same parser (orjson) as ingest.

    jsonb keeps numbers as NUMERIC, so a float such as ``1e30`` comes back as a 31-digit
    integer. The default loader turns that into a Python int that no JSON encoder of ours can
    write back (64 bits at most), and every page holding the row would fail. orjson reads such
    integers as floats: whatever ingest accepted can always be read back.
    """
    return orjson.loads(data)


def use_ledger_json(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    """Install ``read_json`` for ``json`` and ``jsonb`` columns on ``conn``."""
    set_json_loads(read_json, conn)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    use_ledger_json(conn)


def async_pool(url: str, *, name: str, min_size: int = 1, max_size: int = 8,
               check: bool = True, idle_seconds: float | None = None) -> AsyncConnectionPool:
    """A pool that is not yet open: the daemon opens it at start and closes it at shutdown.

    Args:
        url: The database URL.
        name: The pool's name in logs.
        min_size: Connections kept open.
        max_size: Connections at most.
        check: Test each connection (one round trip) before handing it out. Callers that retry
            a failed step anyway (the ingest writers) turn it off: a dead connection then
            raises once, is discarded when returned, and the retry gets a fresh one.
        idle_seconds: ``LEDGER_DB_POOL_IDLE_SECONDS``: when set, keep no connection open while
            idle (``min_size`` 0) and close one unused for this long. A small stack's idle
            connections are most of its PostgreSQL memory (one backend process each).
    """
    if idle_seconds is not None:
        min_size = 0
    return AsyncConnectionPool(
        url,
        name=name,
        min_size=min_size,
        max_size=max_size,
        max_idle=idle_seconds if idle_seconds is not None else 600.0,
        open=False,
        kwargs={"autocommit": True},
        configure=_configure,
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
        conn: psycopg.Connection[Any]
        if dict_rows:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=5,
                                   row_factory=dict_row)
        else:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UnavailableError(
            f"cannot connect to PostgreSQL at {masked(url)}: {reason}"
            " (is it running? is the URL right?)"
        ) from exc
    use_ledger_json(conn)
    return conn


def with_database(url: str, database: str) -> str:
    """``url`` (a postgresql:// URL) pointing at another database on the same server."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))
