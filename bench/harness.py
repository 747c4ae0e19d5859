"""What the benchmarks share: their own migrated servers, percentiles and the results table.

Imported by the bench scripts as a sibling module (``python bench/bench_x.py`` puts ``bench/`` on
``sys.path``). The servers are the embedded PostgreSQL and Redis of ``ledger up``, in a folder of
the caller's, so that a benchmark measures a stack of its own and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import gc
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.config import Settings

REPO = Path(__file__).resolve().parents[1]

#: Limits no benchmark should meet: it measures the stack, not the project's quota.
GENEROUS_LIMITS: dict[str, Any] = {
    "auth_rate_limit_minute": 10**9, "auth_rate_limit_hour": 10**9,
    "auth_daily_quota": 10**12, "queue_max_depth": 1_000_000,
}


@contextlib.contextmanager
def migrated_servers(workdir: Path, **overrides: Any) -> Iterator[Settings]:
    """Embedded PostgreSQL and Redis under ``workdir``, migrated; settings that point at them.

    ``overrides`` are further ``Settings`` fields (e.g. ``**GENEROUS_LIMITS``). Both servers
    stop on the way out, whatever happened inside.
    """
    from ledger.cli.db import migrate_all
    from ledger.config import Settings
    from ledger.embedded import EmbeddedPostgres, EmbeddedRedis

    postgres = EmbeddedPostgres(workdir / "pg")
    postgres.start()
    redis = EmbeddedRedis(workdir / "redis")
    try:
        settings = Settings(
            auth_database_url=postgres.url("ledger_auth"),
            logs_database_url=postgres.url("ledger_logs"),
            redis_url=redis.start(), internal_token=secrets.token_urlsafe(16),
            jwt_secret=secrets.token_urlsafe(32), data_dir=workdir / "data", **overrides)
        migrate_all(settings)
        yield settings
    finally:
        redis.stop()
        postgres.stop()


@contextlib.contextmanager
def logs_database(workdir: Path, label: str) -> Iterator[tuple[str, str]]:
    """A fresh, migrated logs database and a Redis: ``(database url, redis url)``.

    The configured servers (``LEDGER_TEST_POSTGRES_URL`` / ``LEDGER_TEST_REDIS_URL``) when set,
    else embedded ones under ``workdir``. The database has this month's partitions and
    yesterday's; it is dropped, and whatever was started is stopped, on the way out.
    """
    import os
    from datetime import UTC, datetime, timedelta

    import psycopg

    from ledger.db import migrate, partitions
    from ledger.db.pool import with_database
    from ledger.embedded import EmbeddedPostgres, EmbeddedRedis

    with contextlib.ExitStack() as started:
        pg_url = os.environ.get("LEDGER_TEST_POSTGRES_URL")
        redis_url = os.environ.get("LEDGER_TEST_REDIS_URL")
        if not pg_url:
            postgres = EmbeddedPostgres(workdir / "pg")
            pg_url = postgres.start()
            started.callback(postgres.stop)
        if not redis_url:
            redis = EmbeddedRedis(workdir / "redis")
            redis_url = redis.start()
            started.callback(redis.stop)
        name = f"ledger_bench_{label}_{os.getpid()}"
        admin_url = with_database(pg_url, "postgres")
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.execute(f"CREATE DATABASE {name}")

        def drop() -> None:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

        started.callback(drop)
        url = with_database(pg_url, name)
        with psycopg.connect(url, autocommit=True) as conn:
            migrate.migrate(conn, "logs")
            now = datetime.now(UTC)
            partitions.ensure_months_sync(conn, partitions.months_ahead(now))
            partitions.ensure_months_sync(conn, {partitions.month_of(now - timedelta(days=1))})
        yield url, redis_url


def import_tests() -> None:
    """Make ``tests.stack`` and the other test harness modules importable."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


@contextlib.contextmanager
def no_client_gc() -> Iterator[None]:
    """The load generator's own garbage collector off for one timed phase.

    This process imports Ledger and the test harness and creates a task, a future and their
    cycles per request, so a full collection here takes tens of milliseconds. During an open-loop
    phase every request due in that time is sent late and counted as the server's latency
    (one such pause put the p99 of Ledger at 1 000 req/s at 33 ms against 7.5 ms without it,
    the same stack, the same hour). The objects that exist before the phase are frozen and the
    collector is off until it ends; what the phase left behind is collected afterwards.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    """Return once ``proc`` accepts connections on 127.0.0.1:``port``; exit if it never does."""
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.05)


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile by nearest rank (NaN for no values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def print_results(rows: list[tuple[str, str]]) -> None:
    """``measure  result`` rows as an aligned table on stdout."""
    width = max(len(name) for name, _ in rows)
    print(f"\n{'measure'.ljust(width)}  result")
    print(f"{'-' * width}  {'-' * 60}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
