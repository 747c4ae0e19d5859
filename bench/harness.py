"""What the benchmarks share: their own migrated servers, percentiles and the results table.

Imported by the bench scripts as a sibling module (``python bench/bench_x.py`` puts ``bench/`` on
``sys.path``). The servers are the embedded PostgreSQL and Redis of ``ledger up``, in a folder of
the caller's, so that a benchmark measures a stack of its own and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
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


def import_tests() -> None:
    """Make ``tests.stack`` and the other test harness modules importable."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


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
