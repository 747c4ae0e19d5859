"""Monthly partitions of ``logs`` (``logs_YYYY_MM``): names, creation, listing.

Writers call ``ensure_months`` for the months a batch touches; analytics keeps the current month
and at least two ahead. Creation is idempotent and safe under concurrency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

AHEAD_MONTHS = 2


def month_of(ts: datetime) -> date:
    """The first day of the month holding ``ts`` (in UTC)."""
    ts = ts.astimezone(UTC)
    return date(ts.year, ts.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"logs_{month.year:04d}_{month.month:02d}"


def _create_statement(month: date) -> sql.Composed:
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF logs FOR VALUES FROM ({}) TO ({})"
    ).format(
        sql.Identifier(partition_name(month)),
        sql.Literal(f"{month.isoformat()} 00:00:00+00"),
        sql.Literal(f"{add_months(month, 1).isoformat()} 00:00:00+00"),
    )


def _ensure_sql(months: Iterable[date]) -> list[sql.Composed]:
    return [_create_statement(m) for m in sorted(set(months))]


# Partition DDL takes an ACCESS EXCLUSIVE lock on `logs`; serialise creators so that two writers
# racing for the same new month do not fail with "relation already exists".
_LOCK_KEY = 0x1ED6E6


def ensure_months_sync(conn: psycopg.Connection[object], months: Iterable[date]) -> list[str]:
    """Create missing partitions for ``months`` (sync, for the CLI). Returns the names created."""
    wanted = sorted(set(months))
    have = set(existing_names_sync(conn))
    missing = [m for m in wanted if partition_name(m) not in have]
    if not missing:
        return []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for statement in _ensure_sql(missing):
            conn.execute(statement)
    return [partition_name(m) for m in missing]


async def ensure_months(conn: psycopg.AsyncConnection[object], months: Iterable[date]) -> list[str]:
    """Async twin of ``ensure_months_sync`` for writers and analytics."""
    wanted = sorted(set(months))
    have = set(await existing_names(conn))
    missing = [m for m in wanted if partition_name(m) not in have]
    if not missing:
        return []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for statement in _ensure_sql(missing):
            await conn.execute(statement)
    return [partition_name(m) for m in missing]


def months_ahead(now: datetime, ahead: int = AHEAD_MONTHS) -> list[date]:
    first = month_of(now)
    return [add_months(first, i) for i in range(ahead + 1)]


_EXISTING = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = 'logs' ORDER BY c.relname
"""


def existing_names_sync(conn: psycopg.Connection[object]) -> list[str]:
    return [str(r[0]) for r in conn.execute(_EXISTING).fetchall()]  # type: ignore[index]


@dataclass(frozen=True)
class PartitionInfo:
    name: str
    rows: int
    bytes: int


def describe_sync(conn: psycopg.Connection[object]) -> list[PartitionInfo]:
    """Every partition with its estimated rows and its size on disk."""
    rows = conn.execute(
        """
        SELECT c.relname, greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'logs' ORDER BY c.relname
        """
    ).fetchall()
    return [PartitionInfo(str(r[0]), int(r[1]), int(r[2])) for r in rows]  # type: ignore[index]


def month_from_name(name: str) -> date | None:
    """``logs_2026_11`` -> 2026-11-01; None for names that are not monthly partitions."""
    parts = name.split("_")
    if len(parts) != 3 or parts[0] != "logs" or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    year, month = int(parts[1]), int(parts[2])
    return date(year, month, 1) if 1 <= month <= 12 else None


def expired(names: Iterable[str], now: datetime, retention_days: int) -> list[str]:
    """Partitions whose every row is older than ``retention_days``: their month ended before
    the cut-off, so dropping them removes nothing a project may still keep."""
    cutoff = (now.astimezone(UTC) - timedelta(days=retention_days)).date()
    out = []
    for name in names:
        month = month_from_name(name)
        if month is not None and add_months(month, 1) <= cutoff:
            out.append(name)
    return sorted(out)


async def existing_names(conn: psycopg.AsyncConnection[object]) -> list[str]:
    cur = await conn.execute(_EXISTING)
    return [str(r[0]) for r in await cur.fetchall()]  # type: ignore[index]


async def drop(conn: psycopg.AsyncConnection[object], names: Iterable[str]) -> None:
    """Async twin of ``drop_sync``."""
    for name in names:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def drop_sync(conn: psycopg.Connection[object], names: Iterable[str]) -> None:
    """Detach and drop whole partitions: instant, no DELETE, no table bloat."""
    for name in names:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


# -- listing with ranges, and trimming one project (retention) -------------------------------

_DESCRIBE = """
SELECT c.relname, greatest(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = 'logs' ORDER BY c.relname
"""


def month_range(name: str) -> tuple[datetime, datetime] | None:
    """The ``[from, to)`` range of a monthly partition (UTC), None for another name."""
    month = month_from_name(name)
    if month is None:
        return None
    end = add_months(month, 1)
    return (datetime(month.year, month.month, 1, tzinfo=UTC),
            datetime(end.year, end.month, 1, tzinfo=UTC))


async def describe(conn: psycopg.AsyncConnection[object]) -> list[PartitionInfo]:
    """Async twin of ``describe_sync``."""
    cur = await conn.execute(_DESCRIBE)
    return [PartitionInfo(str(r[0]), int(r[1]), int(r[2]))  # type: ignore[index]
            for r in await cur.fetchall()]


async def count_older(conn: psycopg.AsyncConnection[object], project_id: str,
                      cutoff: datetime) -> int:
    """Rows of one project older than ``cutoff`` (what a trim would delete)."""
    cur = await conn.execute(
        "SELECT count(*) FROM logs WHERE project_id = %s AND timestamp < %s",
        (project_id, cutoff))
    row = await cur.fetchone()
    return int(row[0]) if row else 0  # type: ignore[index]


async def trim(conn: psycopg.AsyncConnection[object], name: str, project_id: str,
               cutoff: datetime, batch_rows: int) -> int:
    """Delete one project's rows older than ``cutoff`` from partition ``name``.

    Each statement deletes at most ``batch_rows`` rows (found through the project/time index,
    deleted by ``ctid``) and commits on its own (``conn`` is autocommit), so locks and WAL stay
    bounded and writers are never held up; every other project's rows are untouched.
    """
    statement = sql.SQL(
        "DELETE FROM {t} WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM {t} WHERE project_id = %s AND timestamp < %s LIMIT %s))"
    ).format(t=sql.Identifier(name))
    total = 0
    while True:
        cur = await conn.execute(statement, (project_id, cutoff, batch_rows))
        total += cur.rowcount
        if cur.rowcount < batch_rows:
            return total
