"""Writing queued logs into PostgreSQL: COPY, de-duplication and error groups, one transaction.

Two ways in, same result:

- fast: binary ``COPY`` straight into ``logs`` of the tuples ingest encoded
  (``ledger.queue.rows``). It is all or nothing, so when it succeeds every row is new and every
  error counts for its group.
- de-duplicating, when the fast way hits the primary key (a re-delivered entry, a client
  retry with the same ``log_id``): ``COPY`` into a temporary staging table, then
  ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`` — only the rows actually inserted
  count for their groups, so a re-delivery never counts an error twice.

Measured with ``bench/bench_writers.py`` on the 2-core development machine: the whole writer
path (Redis, fast way, groups, acknowledgement) runs at ~1.1 x psycopg's raw binary COPY of
ready Python rows, the de-duplicating way with new rows at ~0.4 x; hence the fast way first.
Error groups are aggregated per batch and upserted with one statement, plus one UPDATE for the
regression rule (DESIGN §6); those rules are ``ledger.core.error_groups``'.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from ledger.core.error_groups import ErrorEvent, aggregate_groups, upsert_groups
from ledger.core.events import LOG_COLUMNS
from ledger.db import partitions
from ledger.queue.rows import COPY_HEADER, COPY_TRAILER

_COLUMNS = ", ".join(LOG_COLUMNS)
_COPY_LOGS = f"COPY logs ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_STAGING = f"COPY ledger_staging ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
# Temporary, so without WAL; emptied at every commit; created once per connection.
_CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS ledger_staging (LIKE logs) ON COMMIT DELETE ROWS"
)
_INSERT_FROM_STAGING = f"""
WITH inserted AS (
    INSERT INTO logs ({_COLUMNS}) SELECT {_COLUMNS} FROM ledger_staging
    ON CONFLICT DO NOTHING
    RETURNING project_id, id, timestamp, error_fingerprint
)
SELECT project_id, id, timestamp, error_fingerprint IS NOT NULL FROM inserted
"""

# -- writing ---------------------------------------------------------------------------------


async def _copy(conn: psycopg.AsyncConnection[Any], statement: str,
                chunks: Sequence[bytes]) -> int:
    """Send ready tuples through binary COPY; the rows copied."""
    async with conn.cursor() as cur:
        async with cur.copy(statement) as copy:
            await copy.write(COPY_HEADER)
            for chunk in chunks:
                await copy.write(chunk)
            await copy.write(COPY_TRAILER)
        return cur.rowcount


async def write(conn: psycopg.AsyncConnection[Any], chunks: Sequence[bytes],
                errors: Sequence[ErrorEvent],
                components: dict[tuple[uuid.UUID, str], Any]) -> int:
    """Store logs and their error groups in one transaction, each log once.

    Args:
        conn: An autocommit connection.
        chunks: Binary COPY tuples (``rows.encode_row``), back to back, in any number of
            chunks; partitions for their months must exist.
        errors: The error events among them.
        components: Fingerprint components by ``(project id, fingerprint)``.

    Returns:
        How many logs were new (the others were stored already).

    Raises:
        psycopg.DataError, psycopg.IntegrityError: PostgreSQL refused a log (the caller
            splits the batch to find it); any other ``psycopg.Error`` is the database's state.
    """
    try:
        if not errors and conn.autocommit:
            # One statement in autocommit is a transaction of its own, all or nothing: no
            # BEGIN and COMMIT round trips for a batch without errors (most of them).
            return await _copy(conn, _COPY_LOGS, chunks)
        async with conn.transaction():
            copied = await _copy(conn, _COPY_LOGS, chunks)
            await upsert_groups(conn, aggregate_groups(errors, components))
        return copied
    except pg_errors.UniqueViolation:
        pass  # some rows are stored already: take the de-duplicating way
    async with conn.transaction():
        await conn.execute(_CREATE_STAGING)
        await _copy(conn, _COPY_STAGING, chunks)
        cur = await conn.execute(_INSERT_FROM_STAGING)
        returned = await cur.fetchall()
        fresh = {(r[0], r[1], r[2]) for r in returned if r[3]}
        new_errors = []
        for event in errors:
            key = (event.project_id, event.id, event.timestamp)
            if key in fresh:
                fresh.discard(key)  # a key twice in one batch was stored once: count it once
                new_errors.append(event)
        await upsert_groups(conn, aggregate_groups(new_errors, components))
    return len(returned)


async def ensure_partitions(conn: psycopg.AsyncConnection[Any], wanted: set[date],
                            known: set[date]) -> None:
    """Create the partitions of ``wanted`` months not in ``known`` (a per-process cache)."""
    missing = wanted - known
    if missing:
        await partitions.ensure_months(conn, missing)
        known |= missing
