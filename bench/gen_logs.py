"""Fill a logs database for the read benchmarks: N logs over D days and P projects.

    .venv/bin/python bench/gen_logs.py                        # 10 M logs, 90 days, 20 projects
    .venv/bin/python bench/gen_logs.py --rows 1000000 --data-dir /tmp/ledger-bench-small

Uses the embedded PostgreSQL under ``--data-dir`` (kept, so that ``bench_query.py`` reuses it).
Creates an account with P projects and one read key each in the auth database (written to
``<data-dir>/bench.json``), then generates the logs inside PostgreSQL (``INSERT … SELECT`` over
``generate_series``: the generator costs no Python per row) one day per statement, on two
connections, into the real partitioned ``logs`` table with every index of the schema. Then it
builds the error groups of the generated errors and runs ``VACUUM ANALYZE`` (what autovacuum
does to an insert-only table in production).

Shape: levels debug 15 %, info 60 %, warning 15 %, error 8 %, critical 2 %; half of the errors
are exceptions with a stack trace; about 1 log in 200 mentions a timeout; environments
production/staging; a release per 10 days; UUIDv7 ids matching their timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DAY_SQL = """
INSERT INTO logs (project_id, id, timestamp, ingested_at, level, log_type, importance, message,
                  error_type, error_message, stack_trace, environment, release, sdk_version,
                  platform, platform_version, attributes, error_fingerprint, fingerprint_version)
SELECT project_id, {uuid}, ts, ts + interval '40 milliseconds', level,
       CASE WHEN level IN ('error', 'critical') AND r2 < 0.5 THEN 'exception'
            WHEN r2 < 0.55 THEN 'logger' WHEN r2 < 0.7 THEN 'endpoint'
            WHEN r2 < 0.8 THEN 'database' WHEN r2 < 0.9 THEN 'network' ELSE 'console' END,
       (ARRAY['standard', 'standard', 'high', 'low'])[1 + (n %% 4)],
       CASE WHEN n %% 200 = 7 THEN 'connection timeout after ' || (n %% 60) || 's to db-'
                                   || (n %% 5)
            WHEN n %% 5 = 0 THEN 'GET /api/v1/items/' || (n %% 10000) || ' 200 in '
                                || (n %% 300) || 'ms'
            WHEN n %% 5 = 1 THEN 'user ' || (n %% 50000) || ' logged in from 10.0.'
                                || (n %% 255) || '.' || (n %% 97)
            WHEN n %% 5 = 2 THEN 'cache miss for session:' || md5(n::text)
            WHEN n %% 5 = 3 THEN 'payment processed order=' || n || ' amount=' || (n %% 900)
            ELSE 'worker heartbeat queue=' || (n %% 7) || ' lag=' || (n %% 1000) || 'ms' END,
       et, CASE WHEN et IS NULL THEN NULL ELSE et || ' in handler ' || (n %% 10) END,
       CASE WHEN et IS NOT NULL AND r2 < 0.5 THEN
           'Traceback (most recent call last):' || chr(10)
           || '  File "/srv/app/api/views.py", line ' || (40 + n %% 30) || ', in handle' || chr(10)
           || '    return service.run(request)' || chr(10)
           || '  File "/srv/app/core/service.py", line ' || (100 + n %% 50) || ', in run'
           || chr(10) || '    raise ' || et || '(detail)' || chr(10) || et || ': failed'
       END,
       CASE WHEN n %% 4 = 0 THEN 'staging' ELSE 'production' END,
       '1.' || {day} / 10 || '.0', '0.1.0', 'python', '3.11',
       CASE WHEN n %% 10 = 0 THEN jsonb_build_object('request_id', n, 'route', '/api/v1/items')
       END,
       CASE WHEN et IS NULL THEN NULL
            ELSE left(md5(project_id::text || et || (n %% 10)), 32) END,
       CASE WHEN et IS NULL THEN NULL ELSE 1 END
FROM (
    SELECT n, ts, r2,
           (%(projects)s::uuid[])[1 + floor(r3 * %(project_count)s)::int] AS project_id,
           CASE WHEN r1 < 0.15 THEN 'debug' WHEN r1 < 0.75 THEN 'info'
                WHEN r1 < 0.90 THEN 'warning' WHEN r1 < 0.98 THEN 'error'
                ELSE 'critical' END AS level,
           CASE WHEN r1 >= 0.90 THEN (ARRAY['KeyError', 'ValueError', 'TimeoutError',
                'ConnectionError', 'TypeError'])[1 + (n %% 5)] END AS et
    FROM (
        SELECT n, %(start)s::timestamptz + random() * %(span)s::interval AS ts,
               random() AS r1, random() AS r2, random() AS r3
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
    ) AS raw
) AS shaped
"""

GROUPS_SQL = """
INSERT INTO error_groups (id, project_id, fingerprint, fingerprint_version, components, title,
                          error_type, level, log_type, first_seen, last_seen, event_count,
                          last_release, sample_log_id)
SELECT gen_random_uuid(), project_id, error_fingerprint, 1,
       jsonb_build_object('method', 'type_message', 'error_type', max(error_type),
                          'message', max(error_type) || ' in handler <num>'),
       max(error_type) || ': ' || max(error_message), max(error_type), max(level),
       max(log_type), min(timestamp), max(timestamp), count(*), max(release),
       (array_agg(id ORDER BY timestamp DESC))[1]
FROM logs WHERE error_fingerprint IS NOT NULL
GROUP BY project_id, error_fingerprint
ON CONFLICT (project_id, fingerprint) DO NOTHING
"""


async def create_projects(settings: object, count: int) -> list[dict[str, str]]:
    """An account with ``count`` projects and a read key each."""
    from ledger.config import Settings
    from ledger.core import accounts, api_keys, projects
    from ledger.core.connections import auth_connections
    from ledger.core.projects import ProjectDefaults

    assert isinstance(settings, Settings)
    made: list[dict[str, str]] = []
    async with auth_connections(settings) as (conn, _redis):
        account = await accounts.register(conn, "bench@ledger.local", "bench password 1")
        unlimited = ProjectDefaults(rate_limit_minute=10**9, rate_limit_hour=10**9,
                                    daily_quota=10**12, retention_days=120)
        for i in range(count):
            project = await projects.create_project(
                conn, account_id=account.id, name=f"Bench {i:02d}", slug=f"bench-{i:02d}",
                defaults=unlimited)
            _, key = await api_keys.create_key(conn, project.id, "bench", ["read"])
            made.append({"id": project.id, "slug": project.slug, "key": key})
    return made


def generate(url: str, project_ids: list[str], rows: int, days: int, workers: int) -> None:
    """Insert ``rows`` logs spread evenly over the last ``days`` days."""
    import psycopg

    from ledger.db import partitions

    now = datetime.now(UTC).replace(microsecond=0)
    first_day = now - timedelta(days=days)
    per_day = rows // days
    with psycopg.connect(url, autocommit=True) as conn:
        partitions.ensure_months_sync(
            conn, {partitions.month_of(first_day + timedelta(days=d)) for d in range(days + 1)})
        version = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
    # UUIDv7 with the log's own time (PostgreSQL 18); random v4 before that.
    uuid_sql = "uuidv7(ts - clock_timestamp())" if version >= 180000 else "gen_random_uuid()"

    def one_day(day: int) -> float:
        started = time.perf_counter()
        count = per_day + (rows - per_day * days if day == days - 1 else 0)
        statement = DAY_SQL.format(uuid=uuid_sql, day=day)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement, {
                "projects": project_ids, "project_count": len(project_ids),
                "start": first_day + timedelta(days=day), "span": timedelta(days=1),
                "first": day * per_day, "last": day * per_day + count - 1,
            })
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for done, seconds in enumerate(pool.map(one_day, range(days)), 1):
            if done % 10 == 0 or done == days:
                elapsed = time.perf_counter() - started
                print(f"  {done}/{days} days, {done * per_day:,} logs, {elapsed:.0f}s"
                      f" (last day {seconds:.1f}s)", flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        print("  error groups ...", flush=True)
        conn.execute(GROUPS_SQL)
        print("  VACUUM ANALYZE ...", flush=True)
        conn.execute("VACUUM (ANALYZE) logs")
        conn.execute("VACUUM (ANALYZE) error_groups")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/ledger-bench"))
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import secrets

    from ledger.cli.db import migrate_all
    from ledger.config import Settings
    from ledger.embedded import EmbeddedPostgres, EmbeddedRedis

    state = args.data_dir / "bench.json"
    if state.exists():
        raise SystemExit(f"{state} exists: the data is there already (remove {args.data_dir}"
                         " to generate again)")
    postgres = EmbeddedPostgres(args.data_dir / "pg")
    postgres.start()
    redis = EmbeddedRedis(args.data_dir / "redis")  # the auth helpers want one
    try:
        settings = Settings(auth_database_url=postgres.url("ledger_auth"),
                            logs_database_url=postgres.url("ledger_logs"),
                            redis_url=redis.start(), internal_token=secrets.token_urlsafe(16))
        migrate_all(settings)
        projects = asyncio.run(create_projects(settings, args.projects))
        started = time.perf_counter()
        print(f"generating {args.rows:,} logs over {args.days} days and {args.projects}"
              " projects", flush=True)
        generate(str(settings.logs_database_url), [p["id"] for p in projects], args.rows,
                 args.days, args.workers)
        seconds = time.perf_counter() - started
        state.write_text(json.dumps({"rows": args.rows, "days": args.days,
                                     "generated_at": datetime.now(UTC).isoformat(),
                                     "seconds": round(seconds, 1), "projects": projects},
                                    indent=2))
        print(f"done in {seconds:.0f}s ({args.rows / seconds:,.0f} logs/s); state in {state}")
    finally:
        redis.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
