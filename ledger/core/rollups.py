"""Hourly rollups of the raw logs into ``aggregated_metrics`` and ``bottleneck_metrics``.

One (project, hour) is always recomputed whole from the raw rows — delete its rollup rows,
aggregate the hour again, insert — inside one transaction, so a rollup equals a recount of the
rows stored at that moment however often it runs. That makes late logs simple: the writers
record the (project, hour) pairs each committed batch touched (``mark_touched``), and the
rollup job recomputes exactly those (``pop_touched``), whether the hour is the current one or
two days old.

Rows written (``metric_type`` / ``dimension``):

* ``log_volume`` / ``<level>:<log_type>``: count; ``error_count`` counts error and critical.
* ``exception`` / ``<error type>``: exception logs per error type.
* ``error_group`` / ``<fingerprint>``: events per error group (the trend of top errors).
* ``endpoint`` / ``<METHOD> <route>``: count, ``error_count`` (status >= 500), min/avg/max and
  p50/p95/p99 of ``duration_ms`` (``percentile_cont``: linear interpolation). The same figures
  per route go to ``bottleneck_metrics``.

The route is ``attributes.endpoint.route`` when the client sends a template, otherwise the path
without its query string, with UUIDs and numeric segments replaced by ``{uuid}`` and ``{id}``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis.asyncio as aioredis

from ledger import bus

HOUR = timedelta(hours=1)
#: (project, hour) pairs taken per rollup step; the rest wait for the next one.
POP_BATCH = 1_000

ROUTE_SQL = r"""coalesce(
    nullif(attributes->'endpoint'->>'route', ''),
    regexp_replace(
        regexp_replace(split_part(coalesce(attributes->'endpoint'->>'path', ''), '?', 1),
                       '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}',
                       '{uuid}', 'g'),
        '/[0-9]+(?=/|$)', '/{id}', 'g'))"""


def _number(field: str) -> str:
    # Ingest validates these; rows stored some other way must not stop the rollup.
    path = f"attributes->'endpoint'->'{field}'"
    return f"CASE WHEN jsonb_typeof({path}) = 'number' THEN ({path})::text::float8 END"


_SCOPE_ALL = "TRUE"
_SCOPE_SOME = "project_id = ANY(%(projects)s::uuid[])"

_DELETE_AGGREGATED = """
DELETE FROM aggregated_metrics WHERE bucket_start = %(start)s AND {scope}
"""
_DELETE_BOTTLENECK = """
DELETE FROM bottleneck_metrics WHERE bucket_start = %(start)s AND {scope}
"""
# One scan of the hour for volume, exceptions and groups (GROUPING SETS).
_INSERT_COUNTS = """
INSERT INTO aggregated_metrics (project_id, metric_type, bucket_start, dimension, count,
                                error_count)
SELECT project_id,
       CASE WHEN GROUPING(level) = 0 THEN 'log_volume'
            WHEN GROUPING(error_type) = 0 THEN 'exception'
            ELSE 'error_group' END,
       %(start)s,
       CASE WHEN GROUPING(level) = 0 THEN level || ':' || log_type
            WHEN GROUPING(error_type) = 0 THEN coalesce(error_type, '(none)')
            ELSE error_fingerprint END,
       count(*),
       count(*) FILTER (WHERE level IN ('error', 'critical'))
FROM logs
WHERE timestamp >= %(start)s AND timestamp < %(end)s AND {scope}
GROUP BY GROUPING SETS ((project_id, level, log_type), (project_id, log_type, error_type),
                        (project_id, error_fingerprint))
HAVING (GROUPING(level) = 0)
    OR (GROUPING(error_type) = 0 AND log_type = 'exception')
    OR (GROUPING(error_fingerprint) = 0 AND error_fingerprint IS NOT NULL)
"""
_INSERT_ENDPOINTS = f"""
WITH requests AS (
    SELECT project_id, upper(coalesce(attributes->'endpoint'->>'method', '')) AS method,
           {ROUTE_SQL} AS route,
           {_number('duration_ms')} AS duration, {_number('status_code')} AS status
    FROM logs
    WHERE timestamp >= %(start)s AND timestamp < %(end)s AND log_type = 'endpoint'
      AND {{scope}}
), stats AS (
    SELECT project_id, method, route, count(*) AS n,
           count(*) FILTER (WHERE status >= 500) AS errors,
           min(duration) AS lo, avg(duration) AS mean, max(duration) AS hi,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY duration) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY duration) AS p95,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY duration) AS p99
    FROM requests GROUP BY project_id, method, route
), aggregated AS (
    INSERT INTO aggregated_metrics (project_id, metric_type, bucket_start, dimension, count,
                                    error_count, min_ms, avg_ms, max_ms, p50_ms, p95_ms, p99_ms)
    SELECT project_id, 'endpoint', %(start)s, method || ' ' || route, n, errors, lo, mean, hi,
           p50, p95, p99
    FROM stats
)
INSERT INTO bottleneck_metrics (project_id, route, method, bucket_start, count, min_ms, max_ms,
                                avg_ms, median_ms, p95_ms, p99_ms)
SELECT project_id, route, method, %(start)s, n, lo, hi, mean, p50, p95, p99 FROM stats
"""


def hour_of(ts: datetime) -> datetime:
    """The start of the UTC hour holding ``ts``."""
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def recompute_hour(conn: psycopg.AsyncConnection[Any], start: datetime,
                         projects: Sequence[str] | None = None) -> None:
    """Recompute the rollups of hour ``start`` for ``projects`` (None: every project).

    One transaction: readers see the old figures or the new ones, never a half.
    """
    start = hour_of(start)
    scope = _SCOPE_ALL if projects is None else _SCOPE_SOME
    params = {"start": start, "end": start + HOUR, "projects": list(projects or [])}
    async with conn.transaction():
        for statement in (_DELETE_AGGREGATED, _DELETE_BOTTLENECK, _INSERT_COUNTS,
                          _INSERT_ENDPOINTS):
            await conn.execute(statement.replace("{scope}", scope).encode(), params)


# -- what the writers touched ----------------------------------------------------------------


def _member(project_id: str, epoch_hour: int) -> str:
    return f"{project_id}|{epoch_hour}"


async def mark_touched(redis: aioredis.Redis, project_id: str, epoch_hours: Iterable[int],
                       ) -> None:
    """Record that a committed batch of ``project_id`` had logs in these hours (since the
    epoch). Called by the writers after the commit and before the acknowledgement, so a crash
    in between re-delivers the entry and marks the hours again."""
    members = [_member(project_id, h) for h in epoch_hours]
    if members:
        await redis.sadd(bus.TOUCHED_HOURS, *members)


# Take up to N pairs and keep them aside (one atomic step: a pair is always in one of the two).
_TAKE = """
local taken = redis.call('spop', KEYS[1], ARGV[1])
if #taken > 0 then redis.call('sadd', KEYS[2], unpack(taken)) end
return taken
"""


async def recover_touched(redis: aioredis.Redis) -> None:
    """Put back what a run that died had taken. Call under the rollup job's lock only."""
    if await redis.exists(bus.TOUCHED_HOURS_TAKEN):
        await redis.sunionstore(bus.TOUCHED_HOURS, [bus.TOUCHED_HOURS, bus.TOUCHED_HOURS_TAKEN])
        await redis.delete(bus.TOUCHED_HOURS_TAKEN)


async def pop_touched(redis: aioredis.Redis, count: int = POP_BATCH,
                      ) -> dict[datetime, list[str]]:
    """Take up to ``count`` touched pairs, as project ids by hour start.

    They stay in a "taken" set until ``finish_touched``; a run that dies leaves them there
    for ``recover_touched``. A pair marked again while it is being recomputed is in the
    touched set anew, so nothing written after the recompute's snapshot is missed.
    """
    raw = await redis.eval(_TAKE, 2, bus.TOUCHED_HOURS, bus.TOUCHED_HOURS_TAKEN, count)
    by_hour: dict[datetime, list[str]] = defaultdict(list)
    for item in raw or []:
        text = item.decode() if isinstance(item, bytes) else str(item)
        project_id, _, hour = text.partition("|")
        if hour.isdigit():
            by_hour[datetime.fromtimestamp(int(hour) * 3600, UTC)].append(project_id)
    return dict(by_hour)


async def finish_touched(redis: aioredis.Redis, by_hour: dict[datetime, list[str]]) -> None:
    """The pairs' rollups are committed: forget them."""
    members = [_member(p, int(hour.timestamp()) // 3600)
               for hour, projects in by_hour.items() for p in projects]
    if members:
        await redis.srem(bus.TOUCHED_HOURS_TAKEN, *members)
