"""Migrations: applied once, in order, under a lock; edited or unknown ones are refused."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from ledger.core import error_groups
from ledger.db import migrate, partitions
from ledger.errors import MigrationError
from tests.conftest import create_database, drop_database


@pytest.mark.parametrize("database", migrate.DATABASES)
def test_fresh_database_migrates_then_is_current(pg_server_url: str, database: str) -> None:
    url = create_database(pg_server_url, f"ledger_mig_{database}")
    try:
        with psycopg.connect(url) as conn:
            applied = migrate.migrate(conn, database)
            assert [m.version for m in applied] == [m.version for m in migrate.available(database)]
            assert migrate.migrate(conn, database) == []  # idempotent
            migrate.require_current(conn, database)
            assert all(s.applied_at is not None for s in migrate.status(conn, database))
    finally:
        drop_database(pg_server_url, f"ledger_mig_{database}")


def test_pending_migration_is_reported(pg_server_url: str) -> None:
    url = create_database(pg_server_url, "ledger_mig_pending")
    try:
        with psycopg.connect(url) as conn, pytest.raises(MigrationError, match="db migrate"):
            migrate.require_current(conn, "logs")
    finally:
        drop_database(pg_server_url, "ledger_mig_pending")


def test_edited_migration_is_refused(logs_db_url: str) -> None:
    with psycopg.connect(logs_db_url, autocommit=True) as conn:
        conn.execute("UPDATE ledger_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(MigrationError, match="edited"):
            migrate.migrate(conn, "logs")


def test_unknown_applied_migration_is_refused(auth_db_url: str) -> None:
    with psycopg.connect(auth_db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ledger_migrations (version, name, checksum) "
                     "VALUES (999, 'from_the_future', 'x')")
        with pytest.raises(MigrationError, match="does not ship"):
            migrate.status(conn, "auth")


def test_partitions_are_created_monthly_and_idempotently(logs_db_url: str) -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    with psycopg.connect(logs_db_url, autocommit=True) as conn:
        created = partitions.ensure_months_sync(conn, partitions.months_ahead(now))
        assert created == ["logs_2026_11", "logs_2026_12", "logs_2027_01"]
        assert partitions.ensure_months_sync(conn, partitions.months_ahead(now)) == []
        assert partitions.existing_names_sync(conn) == created
        conn.execute(
            "INSERT INTO logs (project_id, id, timestamp, ingested_at, level, log_type, importance)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), '2026-12-31 23:59:59+00', now(),"
            " 'info', 'logger', 'standard')"
        )
        row = conn.execute("SELECT tableoid::regclass::text FROM logs").fetchone()
        assert row == ("logs_2026_12",)


def test_release_comparison_orders_numerically(logs_db_url: str) -> None:
    with psycopg.connect(logs_db_url) as conn:
        cases = [("1.10.0", "1.9.2", 1), ("1.2.0", "1.2.0", 0), ("v2", "v10", -1),
                 ("2024.1.5", "2024.1.15", -1)]
        for a, b, want in cases:
            got = conn.execute("SELECT ledger_release_cmp(%s, %s)", (a, b)).fetchone()
            assert got == (want,), (a, b)


def test_sql_and_python_release_orders_agree_under_any_collation(logs_db_url: str) -> None:
    """The writer reopens groups in SQL, the alerts evaluator predicts it in Python: one order.

    A database (or a column) with a linguistic collation must not change the text tie-break:
    checked under C and under every linguistic collation of the server among a few common ones
    (ICU's root locale, glibc's en_US; a server built without both checks C alone).
    """
    cases = [("1.10.0", "1.9.2"), ("v2", "v10"), ("1.0-b", "1.0-B"), ("1.0-beta", "1.0-Beta"),
             ("1.0_a", "1.0-a"), ("1.0.a", "1.0a"), ("2.0", "2.0"), ("v\u0663", "v3"),
             ("r" + "9" * 30, "r" + "9" * 29 + "8")]
    with psycopg.connect(logs_db_url) as conn:
        linguistic = [row[0] for row in conn.execute(
            "SELECT collname FROM pg_collation WHERE collname IN"
            " ('und-x-icu', 'en-x-icu', 'en_US.utf8', 'en_US.UTF-8') ORDER BY collname")]
        for collation in ["C", *linguistic]:
            query = sql.SQL("SELECT ledger_release_cmp(%s COLLATE {c}, %s COLLATE {c})").format(
                c=sql.Identifier(collation))
            for a, b in cases + [(b, a) for a, b in cases]:
                got = conn.execute(query, (a, b)).fetchone()
                assert got == (error_groups.release_cmp(a, b),), (collation, a, b)
