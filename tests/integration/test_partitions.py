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
    dry = runner.invoke(app, ["partitions", "prune", "--older-than", "90d", "--dry-run", "--json"],
                        env=_env(settings))
    assert dry.exit_code == 0, dry.output
    assert '"logs_2020_01"' in dry.output and '"logs_2020_02"' in dry.output
    with psycopg.connect(str(settings.logs_database_url)) as conn:
        assert "logs_2020_01" in partitions.existing_names_sync(conn)

    done = runner.invoke(app, ["partitions", "prune", "--older-than", "90d"], env=_env(settings))
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
    from tests.ports import free_port

    daemon = create(settings.with_overrides(auth_addr=f"127.0.0.1:{free_port()}"))
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
        # A second copy within the job's period does not run it again.
        from ledger.daemons.analytics.runner import history

        other = create(daemon.settings)
        await other.start()
        try:
            await other.run_once()
        finally:
            await other.stop()
        assert len(await history(daemon.redis, "partitions")) == 1
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


def _project(conn: psycopg.Connection[tuple[object, ...]], retention_days: int) -> str:
    """A project row in the auth database with this retention (owned by a new account)."""
    import uuid

    account = str(uuid.uuid4())
    conn.execute("INSERT INTO accounts (id, email, password_hash) VALUES (%s, %s, 'x')",
                 (account, f"{account}@example.com"))
    project = str(uuid.uuid4())
    conn.execute("INSERT INTO projects (id, account_id, name, slug, retention_days)"
                 " VALUES (%s, %s, %s, %s, %s)",
                 (project, account, project[:8], project[:8], retention_days))
    return project


def _count(url: str, project: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM logs WHERE project_id = %s",
                           (project,)).fetchone()
    return int(row[0]) if row else 0


def test_prune_trims_a_short_retention_and_leaves_every_other_project(
        settings: Settings) -> None:
    from datetime import timedelta

    from tests.logrows import insert_logs, log

    with psycopg.connect(str(settings.auth_database_url), autocommit=True) as conn:
        short, long = _project(conn, 7), _project(conn, 365)
    now = datetime.now(UTC)
    logs_url = str(settings.logs_database_url)
    # 20 days of one log an hour for each, and a row in a month past every retention.
    rows = [log(p, now - timedelta(hours=h)) for p in (short, long) for h in range(20 * 24)]
    rows.append(log(long, datetime(2020, 3, 3, tzinfo=UTC)))
    insert_logs(logs_url, rows)
    runner = CliRunner()
    rolled = runner.invoke(app, ["analytics", "run", "rollup", "--hour", "2020-03-03T00"],
                           env=_env(settings))
    assert rolled.exit_code == 0, rolled.output

    dry = runner.invoke(app, ["partitions", "prune", "--dry-run", "--json"],
                        env=_env(settings))
    assert dry.exit_code == 0, dry.output
    import orjson

    shown = orjson.loads(dry.output)
    assert shown["retention_days"] == 365
    assert [p["name"] for p in shown["partitions"]] == ["logs_2020_03"]
    assert shown["partitions"][0]["from"] == "2020-03-01"
    # >=: the row exactly 7 days old when made is older than that once prune runs.
    expected_trim = sum(1 for h in range(20 * 24) if timedelta(hours=h) >= timedelta(days=7))
    assert shown["trimmed"] == [{"project_id": short, "rows": expected_trim}]
    assert _count(logs_url, short) == 20 * 24  # a dry run changes nothing

    done = runner.invoke(app, ["partitions", "prune", "--yes", "--json"], env=_env(settings))
    assert done.exit_code == 0, done.output
    assert orjson.loads(done.output)["trimmed"] == [{"project_id": short,
                                                     "rows": expected_trim}]
    assert _count(logs_url, short) == 20 * 24 - expected_trim
    assert _count(logs_url, long) == 20 * 24  # the 2020 row went with its partition
    with psycopg.connect(logs_url) as conn:
        assert "logs_2020_03" not in partitions.existing_names_sync(conn)
        oldest = conn.execute("SELECT min(timestamp) FROM logs WHERE project_id = %s",
                              (short,)).fetchone()
    assert oldest is not None and oldest[0] >= now - timedelta(days=7, minutes=1)
    # Rollups outlive the raw rows: the dropped month's hour is still counted.
    with psycopg.connect(logs_url) as conn:
        kept = conn.execute("SELECT sum(count) FROM aggregated_metrics WHERE project_id = %s"
                            " AND metric_type = 'log_volume' AND bucket_start = '2020-03-03+00'",
                            (long,)).fetchone()
    assert kept is not None and kept[0] == 1


def test_prune_refuses_a_bad_age(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["partitions", "prune", "--older-than", "soon"],
                                env=_env(settings))
    assert result.exit_code == 64 and "--older-than 'soon'" in result.output


async def test_trim_in_small_batches_keeps_other_projects(settings: Settings) -> None:
    import uuid
    from datetime import timedelta

    from ledger.core import retention
    from tests.logrows import insert_logs, log

    now = datetime.now(UTC)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    insert_logs(str(settings.logs_database_url),
                [log(p, now - timedelta(days=3, minutes=i)) for p in (a, b) for i in range(25)])
    todo = retention.plan([], {a: 1, b: 30}, 30, now)
    async with await psycopg.AsyncConnection.connect(str(settings.logs_database_url),
                                                     autocommit=True) as conn:
        outcome = await retention.apply(conn, todo, batch_rows=4)  # 7 batches
    assert outcome.trimmed == {a: 25}
    assert _count(str(settings.logs_database_url), a) == 0
    assert _count(str(settings.logs_database_url), b) == 25
