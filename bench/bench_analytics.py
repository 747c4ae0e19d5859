"""Analytics timings (issue 12): rollups, late-hour recompute, prune, trim; metric routes.

    .venv/bin/python bench/bench_analytics.py --postgres postgresql://postgres@127.0.0.1/postgres
    .venv/bin/python bench/bench_analytics.py --rest http://127.0.0.1:8000 --api-key ledger_…

The database part creates its own database (dropped at the end) and fills it with SQL
(``generate_series``): ``--rows`` logs (default 1 M) in one hour of an old month, spread over 5
projects (a third endpoint logs with durations, some exceptions), then times:

* ``rollup_hour``: one hourly rollup of every project over those rows;
* ``late_hour``: one late log added, then that hour recomputed for its project only;
* ``prune_partition``: the month partition holding the rows dropped by the retention code;
* ``trim_day``: one project's day (``--trim-rows`` rows) trimmed, in batches of 5 000, inside a
  partition shared with two other projects.

The REST part times ``GET /api/v1/metrics/error-rate`` (``--requests`` sequential requests)
from the cache, and on a miss (the cache key deleted before each request).
Print the load average next to every figure: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from ledger.core import retention, rollups  # noqa: E402
from ledger.db import migrate, partitions  # noqa: E402
from ledger.db.pool import with_database  # noqa: E402

HOUR = datetime(2020, 1, 15, 10, tzinfo=UTC)

_FILL = """
INSERT INTO logs (project_id, id, timestamp, ingested_at, level, log_type, importance, message,
                  error_type, error_fingerprint, attributes)
SELECT (%(projects)s::uuid[])[1 + i %% %(nproj)s], gen_random_uuid(),
       %(start)s::timestamptz
           + (i::float8 * %(span_ms)s / (%(rows)s + 1)) * interval '1 millisecond', now(),
       (ARRAY['debug','info','info','warning','error'])[1 + i %% 5],
       CASE WHEN i %% 3 = 0 THEN 'endpoint' WHEN i %% 50 = 1 THEN 'exception' ELSE 'logger' END,
       'standard', 'message ' || i,
       CASE WHEN i %% 50 = 1 THEN 'Error' || (i %% 7) END,
       CASE WHEN i %% 50 = 1 THEN 'fp' || (i %% 7) END,
       CASE WHEN i %% 3 = 0 THEN jsonb_build_object('endpoint', jsonb_build_object(
           'method', 'GET', 'path', '/api/items/' || (i %% 1000), 'status_code',
           CASE WHEN i %% 97 = 0 THEN 500 ELSE 200 END,
           'duration_ms', (i %% 997) / 3.0)) ELSE '{}'::jsonb END
FROM generate_series(1, %(rows)s) AS i
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def clock(label: str, started: float) -> None:
    print(f"{label:<18} {time.perf_counter() - started:8.3f} s   ({load()})", flush=True)


async def database_part(server: str, rows: int, trim_rows: int) -> None:
    name = f"ledger_bench_analytics_{os.getpid()}"
    admin = with_database(server, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server, name)
    try:
        with psycopg.connect(url) as conn:
            migrate.migrate(conn, "logs")
        projects = [str(uuid.uuid4()) for _ in range(5)]
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            now = datetime.now(UTC)
            await partitions.ensure_months(conn, [partitions.month_of(HOUR),
                                                  partitions.month_of(now - timedelta(days=2)),
                                                  partitions.month_of(now)])
            started = time.perf_counter()
            await conn.execute(_FILL, {"projects": projects, "nproj": 5, "start": HOUR,
                                       "rows": rows, "span_ms": 3_600_000})
            await conn.execute("ANALYZE logs")
            clock(f"fill {rows:,}", started)

            started = time.perf_counter()
            await rollups.recompute_hour(conn, HOUR)
            clock("rollup_hour", started)

            await conn.execute(
                "INSERT INTO logs (project_id, id, timestamp, ingested_at, level, log_type,"
                " importance) VALUES (%s, gen_random_uuid(), %s, now(), 'error', 'logger',"
                " 'standard')", (projects[0], HOUR + timedelta(minutes=5)))
            started = time.perf_counter()
            await rollups.recompute_hour(conn, HOUR, [projects[0]])
            clock(f"late_hour ({rows // 5:,} rows)", started)

            todo = retention.plan(await partitions.existing_names(conn), {}, 90, now)
            assert todo.drop == [partitions.partition_name(partitions.month_of(HOUR))], todo
            started = time.perf_counter()
            outcome = await retention.apply(conn, todo)
            clock(f"prune_partition ({outcome.dropped[0].rows:,} est.)", started)

            day = now - timedelta(days=2)
            await conn.execute(_FILL, {"projects": projects[:3], "nproj": 3, "start": day,
                                       "rows": trim_rows * 3, "span_ms": 86_400_000})
            await conn.execute("ANALYZE logs")
            short = projects[0]
            before = await partitions.count_older(conn, short, now)
            cutoff = day + timedelta(days=1)
            plan = retention.Plan(90, now, [], [retention.Trim(short, 1, cutoff)])
            started = time.perf_counter()
            outcome = await retention.apply(conn, plan)
            clock(f"trim_day ({outcome.trimmed.get(short, 0):,} of {before:,})", started)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def rest_part(base: str, key: str, requests: int) -> None:
    import httpx
    import redis

    from ledger import bus

    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=10) as http:
        settings = http.get("/api/v1/settings").json()
        project = settings["project_id"]
        redis_url = os.environ.get("LEDGER_REDIS_URL", "")
        cache = redis.Redis.from_url(redis_url) if redis_url else None

        def run(miss: bool) -> dict[str, list[float]]:
            """Samples by what the answer said (analytics may refill the cache in between)."""
            samples: dict[str, list[float]] = {"hit": [], "miss": []}
            for _ in range(requests):
                if miss and cache is not None:
                    cache.delete(bus.metric_cache(project, "error-rate"))
                started = time.perf_counter()
                answer = http.get("/api/v1/metrics/error-rate")
                elapsed = (time.perf_counter() - started) * 1000
                assert answer.status_code == 200, answer.text
                samples[answer.headers["X-Ledger-Cache"]].append(elapsed)
            return samples

        http.get("/api/v1/metrics/error-rate")  # warm up the connection and the cache
        found: dict[str, list[float]] = {"hit": [], "miss": []}
        for miss in (False, True):
            if miss and cache is None:
                print("miss: set LEDGER_REDIS_URL to the stack's Redis to time misses")
                continue
            for outcome, values in run(miss).items():
                found[outcome] += values
        for label, values in found.items():
            if not values:
                continue
            samples = sorted(values)
            p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
            print(f"error-rate {label:<5} p50 {statistics.median(samples):6.2f} ms"
                  f"  p99 {p99:6.2f} ms  n={len(samples)}   ({load()})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--postgres", help="a PostgreSQL server URL (any database on it)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trim-rows", type=int, default=100_000)
    parser.add_argument("--rest", help="the gateway URL of a running stack")
    parser.add_argument("--api-key", help="a read key of that stack")
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    if args.postgres:
        asyncio.run(database_part(args.postgres, args.rows, args.trim_rows))
    if args.rest:
        rest_part(args.rest, args.api_key or "", args.requests)


if __name__ == "__main__":
    main()
