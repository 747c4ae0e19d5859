"""Partition upkeep: ahead-of-time creation, instant prune, the analytics job lock."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg
import pytest
from typer.testing import CliRunner

from ledger.cli.main import app
from ledger.config import Settings
from ledger.daemons.analytics import create
from ledger.db import partitions

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_expired_keeps_any_month_that_still_holds_retained_rows() -> None:
    names = ["logs_2026_07", "logs_2026_08", "logs_2026_09", "logs_2026_10", "not_a_partition"]
    # 90 days before 2026-11-27 is 2026-08-29: August still holds rows to keep.
    assert partitions.expired(names, NOW, 90) == ["logs_2026_07"]
    assert partitions.expired(names, NOW, 30) == ["logs_2026_07", "logs_2026_08",
                                                  "logs_2026_09"]
    assert partitions.month_from_name("logs_2026_13") is None
    assert partitions.add_months(date(2026, 12, 1), 1) == date(2027, 1, 1)


def _env(settings: Settings) -> dict[str, str]:
    return settings.to_env()


def test_prune_cli_dry_run_then_drop(settings: Settings) -> None:
    old = [date(2020, 1, 1), date(2020, 2, 1)]
    with psycopg.connect(str(settings.logs_database_url), autocommit=True) as conn:
        partitions.ensure_months_sync(conn, [*old, *partitions.months_ahead(datetime.now(UTC))])
        conn.execute(
            "INSERT INTO logs (project_id, id, timestamp, ingested_at, level, log_type, importance)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), '2020-01-15+00', now(), 'info',"
            " 'logger', 'standard')"
        )
    runner = CliRunner()
    dry = runner.invoke(app, ["partitions", "prune", "--days", "90", "--dry-run", "--json"],
                        env=_env(settings))
    assert dry.exit_code == 0, dry.output
    assert '"logs_2020_01"' in dry.output and '"logs_2020_02"' in dry.output
    with psycopg.connect(str(settings.logs_database_url)) as conn:
        assert "logs_2020_01" in partitions.existing_names_sync(conn)

    done = runner.invoke(app, ["partitions", "prune", "--days", "90"], env=_env(settings))
    assert done.exit_code == 0, done.output
    with psycopg.connect(str(settings.logs_database_url)) as conn:
        left = partitions.existing_names_sync(conn)
        assert "logs_2020_01" not in left and "logs_2020_02" not in left
        assert partitions.partition_name(partitions.month_of(datetime.now(UTC))) in left


def test_partitions_list_and_create_cli(settings: Settings) -> None:
    runner = CliRunner()
    created = runner.invoke(app, ["partitions", "create", "--ahead", "3", "--json"],
                            env=_env(settings))
    assert created.exit_code == 0, created.output
    listed = runner.invoke(app, ["partitions", "list", "--json"], env=_env(settings))
    assert listed.exit_code == 0
    expected = [partitions.partition_name(m) for m in partitions.months_ahead(datetime.now(UTC), 3)]
    for name in expected:
        assert f'"{name}"' in listed.output


def test_partitions_cli_without_database_says_what_to_do() -> None:
    result = CliRunner().invoke(app, ["partitions", "list"], env={"LEDGER_DATA_DIR": "/nowhere"})
    assert result.exit_code == 78
    assert "LEDGER_LOGS_DATABASE_URL is not set" in result.output


async def test_analytics_creates_partitions_ahead_once_per_lock(settings: Settings) -> None:
    daemon = create(settings)
    await daemon.start()
    try:
        async with daemon.pool.connection() as conn:
            assert await partitions.existing_names(conn) == []
        # Prune needs the auth daemon, which is not running: it must skip, not guess.
        await daemon.run_once()
        async with daemon.pool.connection() as conn:
            names = await partitions.existing_names(conn)
        assert names == [partitions.partition_name(m)
                         for m in partitions.months_ahead(datetime.now(UTC))]
        # A second copy within the lock period does not run the job again.
        assert not await daemon._lock("partitions-ahead", ttl=60)
    finally:
        await daemon.stop()


async def test_analytics_refuses_a_stale_schema(settings: Settings, pg_server_url: str) -> None:
    from tests.conftest import create_database, drop_database

    url = create_database(pg_server_url, "ledger_analytics_empty")
    try:
        daemon = create(settings.with_overrides(logs_database_url=url))
        with pytest.raises(Exception, match="ledger db migrate"):
            await daemon.start()
        await daemon.stop()
    finally:
        drop_database(pg_server_url, "ledger_analytics_empty")
