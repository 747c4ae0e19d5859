"""Writing queued logs into PostgreSQL: COPY, de-duplication and error groups, one transaction.

Two ways in, same result:

- fast: binary ``COPY`` straight into ``logs`` of the tuples ingest encoded (``rows.py``). It
  is all or nothing, so when it succeeds every row is new and every error counts for its group.
- de-duplicating, when the fast way hits the primary key (a re-delivered entry, a client
  retry with the same ``log_id``): ``COPY`` into a temporary staging table, then
  ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`` — only the rows actually inserted
  count for their groups, so a re-delivery never counts an error twice.

Measured with ``bench/bench_writers.py`` on the 2-core development machine: the whole writer
path (Redis, fast way, groups, acknowledgement) runs at ~1.1 x psycopg's raw binary COPY of
ready Python rows, the de-duplicating way with new rows at ~0.4 x; hence the fast way first.
Error groups are aggregated per batch and upserted with one statement, plus one UPDATE for the
regression rule (DESIGN §6).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors

from ledger.core.events import LOG_COLUMNS
from ledger.daemons.ingest.rows import COPY_HEADER, COPY_TRAILER
from ledger.db import partitions

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

_SEVERITY = "ARRAY['debug','info','warning','error','critical']"
_UPSERT_GROUPS = f"""
INSERT INTO error_groups AS g (
    id, project_id, fingerprint, fingerprint_version, components, title, error_type, level,
    log_type, first_seen, last_seen, event_count, last_release, sample_log_id)
SELECT gen_random_uuid(), x.project_id, x.fingerprint, x.fingerprint_version,
       coalesce(x.components, '{{}}'::jsonb), x.title, x.error_type, x.level, x.log_type,
       x.first_seen, x.last_seen, x.event_count, x.last_release, x.sample_log_id
FROM jsonb_to_recordset(%s::jsonb) AS x(
    project_id uuid, fingerprint text, fingerprint_version smallint, components jsonb,
    title text, error_type text, level text, log_type text, first_seen timestamptz,
    last_seen timestamptz, event_count bigint, last_release text, sample_log_id uuid)
-- One order for every writer, so that two writers upserting the same groups do not deadlock.
ORDER BY x.project_id, x.fingerprint
ON CONFLICT (project_id, fingerprint) DO UPDATE SET
    event_count = g.event_count + EXCLUDED.event_count,
    first_seen = least(g.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(g.last_seen, EXCLUDED.last_seen),
    last_release = CASE WHEN EXCLUDED.last_seen >= g.last_seen
                        THEN coalesce(EXCLUDED.last_release, g.last_release)
                        ELSE g.last_release END,
    sample_log_id = CASE WHEN EXCLUDED.last_seen >= g.last_seen
                         THEN EXCLUDED.sample_log_id ELSE g.sample_log_id END,
    level = CASE WHEN coalesce(array_position({_SEVERITY}, EXCLUDED.level), 0)
                      > coalesce(array_position({_SEVERITY}, g.level), 0)
                 THEN EXCLUDED.level ELSE g.level END,
    updated_at = now()
"""
# DESIGN §6: a resolved group reopens on an event newer than the resolution whose release is
# the resolved one or newer (or when either release is unknown); an older release does not.
_REGRESS_GROUPS = """
UPDATE error_groups AS g
SET status = 'unresolved', resolved_at = NULL, resolved_in_release = NULL, updated_at = now()
FROM jsonb_to_recordset(%s::jsonb) AS r(
    project_id uuid, fingerprint text, release text, last_seen timestamptz)
WHERE g.status = 'resolved' AND g.project_id = r.project_id AND g.fingerprint = r.fingerprint
  AND (g.resolved_at IS NULL OR r.last_seen > g.resolved_at)
  AND (r.release IS NULL OR g.resolved_in_release IS NULL
       OR ledger_release_cmp(r.release, g.resolved_in_release) >= 0)
"""


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """What the error groups need of one error log (queue entries carry it beside the rows)."""

    project_id: uuid.UUID
    id: uuid.UUID
    timestamp: datetime
    level: str
    log_type: str
    title: str
    error_type: str | None
    release: str | None
    fingerprint: str
    version: int

    @classmethod
    def from_entry(cls, project_id: uuid.UUID, fields: Sequence[Any]) -> ErrorEvent:
        """From an entry's ``errors`` item (its index first, then these fields in order)."""
        (_, log_id, timestamp, level, log_type, title, error_type, release, fingerprint,
         version) = fields
        return cls(project_id, uuid.UUID(log_id), datetime.fromisoformat(timestamp), level,
                   log_type, title, error_type, release, fingerprint, int(version or 1))


@dataclass
class _Group:
    latest: ErrorEvent
    first_seen: datetime
    components: Any
    count: int = 0
    # Newest event per release: enough to decide a regression (the rule is monotone in time).
    releases: dict[str | None, datetime] = field(default_factory=dict)


def aggregate_groups(events: Iterable[ErrorEvent],
                     components: dict[tuple[uuid.UUID, str], Any]) -> list[_Group]:
    """Error events folded into one aggregate per ``(project, fingerprint)``."""
    groups: dict[tuple[uuid.UUID, str], _Group] = {}
    for event in events:
        key = (event.project_id, event.fingerprint)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(event, event.timestamp, components.get(key))
        group.count += 1
        group.first_seen = min(group.first_seen, event.timestamp)
        if event.timestamp >= group.latest.timestamp:
            group.latest = event
        seen = group.releases.get(event.release)
        if seen is None or event.timestamp > seen:
            group.releases[event.release] = event.timestamp
    return list(groups.values())


async def upsert_groups(conn: psycopg.AsyncConnection[Any], groups: Sequence[_Group]) -> None:
    """Apply the regression rule, then add the batch's counts to ``error_groups``."""
    if not groups:
        return
    regressions = [
        {"project_id": g.latest.project_id, "fingerprint": g.latest.fingerprint,
         "release": release, "last_seen": seen}
        for g in groups for release, seen in g.releases.items()
    ]
    await conn.execute(_REGRESS_GROUPS, (orjson.dumps(regressions).decode(),))
    upserts = [
        {"project_id": g.latest.project_id, "fingerprint": g.latest.fingerprint,
         "fingerprint_version": g.latest.version, "components": g.components,
         "title": g.latest.title, "error_type": g.latest.error_type,
         "level": g.latest.level, "log_type": g.latest.log_type,
         "first_seen": g.first_seen, "last_seen": g.latest.timestamp, "event_count": g.count,
         "last_release": g.latest.release, "sample_log_id": g.latest.id}
        for g in groups
    ]
    await conn.execute(_UPSERT_GROUPS, (orjson.dumps(upserts).decode(),))


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
