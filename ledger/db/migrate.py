"""Forward-only SQL migrations, one folder per database, applied under an advisory lock.

Files are ``migrations/<database>/NNNN_name.sql``. Each is applied once, in its own transaction,
and its SHA-256 is recorded: an applied file that was edited since is refused rather than
silently diverging from what the database holds.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Literal

import psycopg
from psycopg import sql

from ledger.errors import MigrationError, UnavailableError

logger = logging.getLogger(__name__)

Database = Literal["auth", "logs"]
DATABASES: tuple[Database, ...] = ("auth", "logs")
_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
# Any constant works as long as every Ledger process uses the same one.
_LOCK_KEY = 0x1ED6E5


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied_at: datetime | None


def available(database: Database) -> list[Migration]:
    """The migrations shipped with this version of Ledger, in order."""
    folder = resources.files("ledger.db").joinpath("migrations", database)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match["version"]), match["name"], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"{database} migrations are not numbered 1..N: {versions}")
    return found


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS ledger_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def _applied(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, tuple[str, str, datetime]]:
    exists = conn.execute("SELECT to_regclass('ledger_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, name, checksum, applied_at FROM ledger_migrations")
    return {int(str(v)): (str(n), str(c), a) for v, n, c, a in rows.fetchall()}  # type: ignore[misc]


def _check(database: Database, shipped: list[Migration],
           applied: dict[int, tuple[str, str, datetime]]) -> None:
    by_version = {m.version: m for m in shipped}
    for version, (name, checksum, _) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the {database} database has migration {version:04d}_{name}, which this version"
                " of Ledger does not ship: upgrade Ledger or point it at the right database"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {database}/{version:04d}_{name}.sql was edited after it was applied;"
                " migrations are forward-only: restore the file and add a new one instead"
            )


def status(
    conn: psycopg.Connection[tuple[object, ...]], database: Database
) -> list[MigrationState]:
    """Every shipped migration with when it was applied (None when pending)."""
    shipped = available(database)
    applied = _applied(conn)
    _check(database, shipped, applied)
    return [MigrationState(m, applied[m.version][2] if m.version in applied else None)
            for m in shipped]


def migrate(conn: psycopg.Connection[tuple[object, ...]], database: Database) -> list[Migration]:
    """Apply pending migrations; return those applied. Safe to run from N processes at once."""
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(_CREATE_TABLE)
        shipped = available(database)
        applied = _applied(conn)
        _check(database, shipped, applied)
        done: list[Migration] = []
        for migration in shipped:
            if migration.version in applied:
                continue
            logger.info("applying %s migration %04d_%s", database, migration.version,
                        migration.name)
            try:
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO ledger_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
            except psycopg.Error as exc:
                raise MigrationError(
                    f"migration {database}/{migration.version:04d}_{migration.name}.sql failed:"
                    f" {exc.diag.message_primary or exc}"
                ) from exc
            done.append(migration)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def require_current(conn: psycopg.Connection[tuple[object, ...]], database: Database) -> None:
    """Raise ``MigrationError`` unless every shipped migration is applied (daemon start-up)."""
    pending = [s.migration for s in status(conn, database) if s.applied_at is None]
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise MigrationError(
            f"the {database} database lacks migrations {names}: run `ledger db migrate`"
        )


def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it does not exist. Returns True if created."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = str(info.get("dbname") or "")
    if not name:
        return False
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone():
                return False
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                return False  # created by a concurrent `ledger db migrate`
            return True
    except psycopg.OperationalError as exc:
        raise UnavailableError(f"cannot reach PostgreSQL to create database {name!r}: "
                               f"{str(exc).strip().splitlines()[-1]}") from exc
