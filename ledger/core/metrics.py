"""The metric figures behind ``/api/v1/metrics/*`` and ``ledger top``, and their Redis caches.

Rollup reads (``aggregated``, ``bottleneck``) come from the hourly tables that analytics writes
(``rollups.py``); the dashboard figures (``error_rate``, ``log_volume``, ``top_errors``) are
kept in Redis by analytics and, on a miss, computed here and cached, so an answer is never empty
because a cache was cold. Parameters are checked here, once: a bad one is an
``InvalidInputError`` naming it.

Daily buckets of endpoint and bottleneck figures add counts and take min/max exactly; the
average is weighted by count, and the percentiles are the count-weighted mean of the hourly
percentiles (an approximation: exact percentiles would need the raw rows, which retention
removes while rollups stay).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import redis.asyncio as aioredis
from psycopg.rows import dict_row

from ledger import bus
from ledger.core.log_search import LEVELS, choices_param, int_param, list_param, time_window
from ledger.errors import InvalidInputError
from ledger.queue import names

METRIC_TYPES = ("exception", "endpoint", "log_volume")
GRANULARITIES = ("hourly", "daily")
STATISTICS = ("min", "max", "avg", "median", "p95", "p99", "count")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MAX_BUCKETS = 2_400
ERROR_RATE_BUCKET = timedelta(minutes=5)
TOP_ERRORS = 50
#: Seconds a cached figure lives; analytics refreshes active projects more often than that.
CACHE_SECONDS = 300
CACHED = ("error-rate", "log-volume", "top-errors")

Json = dict[str, Any]


def _known(params: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(allowed) - {"project_id"})
    if unknown:
        raise InvalidInputError(f"unknown query parameter {unknown[0]!r}; known: project_id,"
                                f" {', '.join(allowed)}")


def _one_choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...],
                default: str | None) -> str:
    values = choices_param(params, name, allowed)
    if len(values) > 1:
        raise InvalidInputError(f"{name} takes one value, one of {', '.join(allowed)}")
    if not values:
        if default is None:
            raise InvalidInputError(f"{name} is required: one of {', '.join(allowed)}")
        return default
    return values[0]


def _window(params: Mapping[str, str], now: datetime, step: timedelta,
            ) -> tuple[datetime, datetime]:
    """The buckets' ``[start, end)``, aligned on ``step``; the last 24 h (hourly) or 30 days
    (daily) without a period."""
    if not any(params.get(k) for k in ("period", "periodFrom", "periodTo")):
        params = {**params, "period": "last24h" if step == HOUR else "last30days"}
    start, end = time_window(params, now, 30)
    start, end = _floor(start, step), _floor(end - timedelta(microseconds=1), step) + step
    if (end - start) / step > MAX_BUCKETS:
        raise InvalidInputError(f"periodFrom/periodTo span more than {MAX_BUCKETS}"
                                f" {'hours' if step == HOUR else 'days'}: narrow the period")
    return start, end


def _floor(ts: datetime, step: timedelta) -> datetime:
    ts = ts.astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((ts - epoch) // step) * step


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _buckets(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    out, at = [], start
    while at < end:
        out.append(at)
        at += step
    return out


class _Fold:
    """Hourly rows folded into one figure (one dimension of one bucket)."""

    __slots__ = ("count", "error_count", "max", "min", "weighted")

    def __init__(self) -> None:
        self.count = 0
        self.error_count = 0
        self.min: float | None = None
        self.max: float | None = None
        self.weighted: dict[str, float] = {}

    def add(self, row: Mapping[str, Any], stats: tuple[str, ...]) -> None:
        n = int(row["count"])
        self.count += n
        self.error_count += int(row.get("error_count") or 0)
        lo, hi = row.get("min_ms"), row.get("max_ms")
        if lo is not None:
            self.min = lo if self.min is None else min(self.min, lo)
        if hi is not None:
            self.max = hi if self.max is None else max(self.max, hi)
        for name in stats:
            value = row.get(name)
            if value is not None:
                self.weighted[name] = self.weighted.get(name, 0.0) + value * n

    def figures(self, stats: tuple[str, ...]) -> Json:
        out: Json = {"count": self.count, "error_count": self.error_count}
        if stats:
            out["min_ms"], out["max_ms"] = self.min, self.max
            for name in stats:
                total = self.weighted.get(name)
                out[name] = None if total is None or not self.count else total / self.count
        return out


_ENDPOINT_STATS = ("avg_ms", "p50_ms", "p95_ms", "p99_ms")


async def aggregated(conn: psycopg.AsyncConnection[Any], project_id: str,
                     params: Mapping[str, str], now: datetime) -> Json:
    """``GET /metrics/aggregated``: hourly or daily buckets of one metric type, zero-filled."""
    _known(params, ("type", "granularity", "period", "periodFrom", "periodTo", "dimension"))
    metric_type = _one_choice(params, "type", METRIC_TYPES, None)
    granularity = _one_choice(params, "granularity", GRANULARITIES, "hourly")
    dimensions = list_param(params, "dimension", 300)
    step = HOUR if granularity == "hourly" else DAY
    start, end = _window(params, now, step)
    cur = await conn.cursor(row_factory=dict_row).execute(
        """
        SELECT bucket_start, dimension, count, error_count, min_ms, avg_ms, max_ms, p50_ms,
               p95_ms, p99_ms
        FROM aggregated_metrics
        WHERE project_id = %s AND metric_type = %s AND bucket_start >= %s AND bucket_start < %s
          AND (cardinality(%s::text[]) = 0 OR dimension = ANY(%s::text[]))
        """, (project_id, metric_type, start, end, list(dimensions), list(dimensions)))
    stats = _ENDPOINT_STATS if metric_type == "endpoint" else ()
    folds: dict[datetime, dict[str, _Fold]] = {b: {} for b in _buckets(start, end, step)}
    for row in await cur.fetchall():
        bucket = folds.setdefault(_floor(row["bucket_start"], step), {})
        bucket.setdefault(row["dimension"], _Fold()).add(row, stats)
    seen = sorted({d for bucket in folds.values() for d in bucket})
    return {
        "type": metric_type, "granularity": granularity, "from": _iso(start), "to": _iso(end),
        "dimensions": seen,
        "buckets": [
            {"timestamp": _iso(at),
             "count": sum(f.count for f in bucket.values()),
             "error_count": sum(f.error_count for f in bucket.values()),
             "by_dimension": {d: f.figures(stats) for d, f in sorted(bucket.items())}}
            for at, bucket in sorted(folds.items())
        ],
    }


_STATISTIC_COLUMN = {"min": "min_ms", "max": "max_ms", "avg": "avg_ms", "median": "median_ms",
                     "p95": "p95_ms", "p99": "p99_ms", "count": "count"}


async def bottleneck(conn: psycopg.AsyncConnection[Any], project_id: str,
                     params: Mapping[str, str], now: datetime) -> Json:
    """``GET /metrics/bottleneck``: routes ranked by one statistic over the period."""
    _known(params, ("routes", "statistic", "period", "periodFrom", "periodTo", "limit"))
    statistic = _one_choice(params, "statistic", STATISTICS, "p95")
    routes = list_param(params, "routes", 300)
    limit = int_param(params, "limit", 20, 1, 500)
    start, end = _window(params, now, HOUR)
    cur = await conn.cursor(row_factory=dict_row).execute(
        """
        SELECT route, method, count, min_ms, max_ms, avg_ms, median_ms, p95_ms, p99_ms
        FROM bottleneck_metrics
        WHERE project_id = %s AND bucket_start >= %s AND bucket_start < %s
        """, (project_id, start, end))
    folds: dict[tuple[str, str], _Fold] = {}
    stats = ("avg_ms", "median_ms", "p95_ms", "p99_ms")
    for row in await cur.fetchall():
        folds.setdefault((row["route"], row["method"]), _Fold()).add(row, stats)
    seen = sorted({route for route, _ in folds})
    column = _STATISTIC_COLUMN[statistic]
    ranked = []
    for (route, method), fold in folds.items():
        if routes and route not in routes:
            continue
        figures = fold.figures(stats)
        ranked.append({"route": route, "method": method, "value": figures[column],
                       **figures})
    ranked.sort(key=lambda r: (r["value"] is None, -(r["value"] or 0), r["route"]))
    return {"statistic": statistic, "from": _iso(start), "to": _iso(end),
            "routes_seen": seen, "routes": ranked[:limit]}


# -- the cached dashboard figures ------------------------------------------------------------


async def error_rate(conn: psycopg.AsyncConnection[Any], project_id: str,
                     now: datetime) -> list[Json]:
    """Error and critical logs in 5-minute buckets over the last 24 h (288 buckets)."""
    end = _floor(now, ERROR_RATE_BUCKET) + ERROR_RATE_BUCKET
    start = end - DAY
    cur = await conn.execute(
        """
        SELECT to_timestamp(floor(extract(epoch FROM timestamp) / 300) * 300) AS bucket,
               count(*) FILTER (WHERE level = 'error'), count(*) FILTER (WHERE level = 'critical')
        FROM logs
        WHERE project_id = %s AND level IN ('error', 'critical')
          AND timestamp >= %s AND timestamp < %s
        GROUP BY 1
        """, (project_id, start, end))
    found = {_floor(r[0], ERROR_RATE_BUCKET): (r[1], r[2])
             for r in await cur.fetchall()}
    return [{"timestamp": _iso(at), "error_count": found.get(at, (0, 0))[0],
             "critical_count": found.get(at, (0, 0))[1]}
            for at in _buckets(start, end, ERROR_RATE_BUCKET)]


async def log_volume(conn: psycopg.AsyncConnection[Any], project_id: str,
                     now: datetime) -> list[Json]:
    """Logs per level, hourly, over the last 7 days (168 buckets), from the rollups."""
    end = _floor(now, HOUR) + HOUR
    start = end - 7 * DAY
    cur = await conn.execute(
        """
        SELECT bucket_start, split_part(dimension, ':', 1), sum(count)
        FROM aggregated_metrics
        WHERE project_id = %s AND metric_type = 'log_volume'
          AND bucket_start >= %s AND bucket_start < %s
        GROUP BY 1, 2
        """, (project_id, start, end))
    found: dict[datetime, dict[str, int]] = {}
    for at, level, n in await cur.fetchall():
        found.setdefault(at, {})[level] = int(n)
    return [{"timestamp": _iso(at), **{lv: found.get(at, {}).get(lv, 0) for lv in LEVELS}}
            for at in _buckets(start, end, HOUR)]


async def top_errors(conn: psycopg.AsyncConnection[Any], project_id: str,
                     now: datetime) -> list[Json]:
    """The 50 unresolved error groups with the most events in the last 24 h, with an hourly
    trend (24 counts, oldest first)."""
    end = _floor(now, HOUR) + HOUR
    start = end - DAY
    cur = await conn.cursor(row_factory=dict_row).execute(
        """
        WITH hourly AS (
            SELECT dimension AS fingerprint, bucket_start, count
            FROM aggregated_metrics
            WHERE project_id = %(p)s AND metric_type = 'error_group'
              AND bucket_start >= %(start)s AND bucket_start < %(end)s
        )
        SELECT g.id, g.title, g.error_type, g.level, g.fingerprint, g.event_count, g.last_seen,
               g.first_seen, coalesce(sum(h.count), 0)::bigint AS count_24h,
               coalesce(jsonb_object_agg(extract(epoch FROM h.bucket_start)::bigint, h.count)
                        FILTER (WHERE h.count IS NOT NULL), '{}') AS trend
        FROM error_groups g LEFT JOIN hourly h ON h.fingerprint = g.fingerprint
        WHERE g.project_id = %(p)s AND g.status = 'unresolved' AND g.last_seen >= %(since)s
        GROUP BY g.id
        ORDER BY count_24h DESC, g.last_seen DESC
        LIMIT %(limit)s
        """, {"p": project_id, "start": start, "end": end, "since": now - DAY,
              "limit": TOP_ERRORS})
    hours = _buckets(start, end, HOUR)
    out = []
    for row in await cur.fetchall():
        trend = {int(k): int(v) for k, v in row.pop("trend").items()}
        out.append({
            "id": str(row["id"]), "title": row["title"], "error_type": row["error_type"],
            "level": row["level"], "fingerprint": row["fingerprint"],
            "event_count": row["event_count"], "count_24h": row["count_24h"],
            "first_seen": _iso(row["first_seen"]), "last_seen": _iso(row["last_seen"]),
            "trend": [trend.get(int(h.timestamp()), 0) for h in hours],
        })
    return out


async def usage(redis: aioredis.Redis, project_id: str, daily_quota: int,
                now: datetime) -> Json:
    """Today's accepted logs (UTC day) against the project's daily quota."""
    day = now.astimezone(UTC)
    raw = await redis.get(names.daily_quota(project_id, day.strftime("%Y%m%d")))
    accepted = int(raw or 0)
    return {"day": day.date().isoformat(), "accepted": accepted, "daily_quota": daily_quota,
            "remaining": max(daily_quota - accepted, 0) if daily_quota else None,
            "percent": round(100 * accepted / daily_quota, 2) if daily_quota else None}


Compute = Callable[[psycopg.AsyncConnection[Any], str, datetime], Awaitable[list[Json]]]
FIGURES: dict[str, Compute] = {"error-rate": error_rate, "log-volume": log_volume,
                               "top-errors": top_errors}


async def refresh(conn: psycopg.AsyncConnection[Any], redis: aioredis.Redis, project_id: str,
                  name: str, now: datetime) -> bytes:
    """Compute figure ``name`` and store it in its cache; return its JSON."""
    body = orjson.dumps({"project_id": project_id, "computed_at": _iso(now),
                         "data": await FIGURES[name](conn, project_id, now)})
    await redis.set(bus.metric_cache(project_id, name), body, ex=CACHE_SECONDS)
    return body


async def cached(conn_factory: Callable[[], Any], redis: aioredis.Redis, project_id: str,
                 name: str, now: datetime) -> tuple[bytes, bool]:
    """Figure ``name`` from its cache, else computed (and cached). Returns (json, was cached).

    Args:
        conn_factory: what gives a connection on a miss (``pool.connection``), so that a hit
            takes none.
    """
    hit = await redis.get(bus.metric_cache(project_id, name))
    if hit is not None:
        return hit if isinstance(hit, bytes) else hit.encode(), True
    async with conn_factory() as conn:
        return await refresh(conn, redis, project_id, name, now), False
