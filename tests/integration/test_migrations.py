"""Migrations: applied once, in order, under a lock; edited or unknown ones are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ledger.core import error_groups
from ledger.db import migrate, partitions
from ledger.embedded import EmbeddedPostgres
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


_BIG_LOG = (
    "INSERT INTO logs (project_id, id, timestamp, ingested_at, level, log_type, importance,"
    " stack_trace, attributes) VALUES (gen_random_uuid(), gen_random_uuid(), %s, now(), 'error',"
    " 'exception', 'standard', %s, jsonb_build_object('frames', %s::text))"
)


def _lz4_supported(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute("SELECT 'lz4' = ANY (enumvals) FROM pg_settings"
                       " WHERE name = 'default_toast_compression'").fetchone()
    return bool(row and row[0])


def _stored_compression(conn: psycopg.Connection[tuple[object, ...]], month: str) -> set[object]:
    """How the large values stored in partition ``month`` were compressed (pglz / lz4)."""
    # Varied text (not one repeated character) of ~6 KB, past the 2 KB TOAST threshold.
    text = "\n".join(f'  File "/app/shop/m{j}.py", line {100 + j}, in step_{j}' for j in range(120))
    conn.execute(_BIG_LOG, (f"{month}-15 12:00:00+00", text, text))
    rows = conn.execute(
        sql.SQL("SELECT pg_column_compression(stack_trace), pg_column_compression(attributes)"
                " FROM {}").format(sql.Identifier(f"logs_{month.replace('-', '_')}"))).fetchall()
    return {value for row in rows for value in row}


def _check_lz4_migration(url: str) -> None:
    """0005 gives lz4 to the large columns of existing and future partitions where the server
    has lz4, and leaves pglz (no error) where it has not."""
    ours = ["stack_trace", "attributes", "message"]
    with psycopg.connect(url, autocommit=True) as conn:
        supported = _lz4_supported(conn)
        partitions.ensure_months_sync(conn, [datetime(2026, 1, 1, tzinfo=UTC).date()])
        # As before 0005: an existing partition whose columns have no method of their own.
        conn.execute("ALTER TABLE logs_2026_01 ALTER COLUMN stack_trace SET COMPRESSION default,"
                     " ALTER COLUMN attributes SET COMPRESSION default,"
                     " ALTER COLUMN message SET COMPRESSION default")
        lz4 = next(m for m in migrate.available("logs") if m.name == "lz4_toast")
        conn.execute(lz4.sql.encode())  # idempotent; the upgrade path
        partitions.ensure_months_sync(conn, [datetime(2026, 2, 1, tzinfo=UTC).date()])
        methods = conn.execute(
            "SELECT attrelid::regclass::text, attname, attcompression FROM pg_attribute"
            " WHERE attrelid IN ('logs'::regclass, 'logs_2026_01'::regclass,"
            " 'logs_2026_02'::regclass) AND attname = ANY (%s)", (ours,)).fetchall()
        assert len(methods) == 9
        expected = "l" if supported else ""
        assert {m[2] for m in methods} == {expected}, methods
        for month in ("2026-01", "2026-02"):
            assert _stored_compression(conn, month) == ({"lz4"} if supported else {"pglz"})


def test_large_log_columns_use_lz4_where_the_server_has_it(logs_db_url: str) -> None:
    _check_lz4_migration(logs_db_url)


def test_lz4_migration_runs_on_the_embedded_server(tmp_path: Path) -> None:
    """The embedded PostgreSQL (pgserver build) may lack lz4: migrating must still work."""
    server = EmbeddedPostgres(tmp_path / "pg")
    server_url = server.start()
    try:
        url = create_database(server_url, "ledger_mig_lz4")
        with psycopg.connect(url, autocommit=True) as conn:
            migrate.migrate(conn, "logs")
        _check_lz4_migration(url)
    finally:
        server.stop()
