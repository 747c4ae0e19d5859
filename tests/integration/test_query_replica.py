"""LEDGER_QUERY_DATABASE_URL: the query daemon reads from a real streaming replica.

A primary and its replica (``initdb``, ``pg_basebackup -R``) run on free loopback ports in a
folder of this test's own; logs go in through a real ingest daemon and its writers on the
primary, and come out through the query daemon reading the replica. Pausing the replica's WAL
replay shows where each call goes: reads stop seeing new logs, a group's status change (a
write) still succeeds on the primary, and both appear once replay resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest

from ledger.config import Settings
from ledger.daemons.query import create as create_query
from ledger.db.migrate import ensure_database, migrate
from ledger.rpc.query_client import QueryClient
from tests.ingest_support import error_log, log, running_ingest, send
from tests.ports import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def _bindir() -> Path:
    found = shutil.which("pg_config")
    if found is None:
        pytest.fail("pg_config is not on PATH: apt-get install postgresql (initdb, pg_ctl and"
                    " pg_basebackup are needed for the replica test)")
    return Path(subprocess.run([found, "--bindir"], check=True, capture_output=True,
                               text=True).stdout.strip())


class ServerPair:
    """A primary and a streaming replica of it, both on loopback, in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bindir = _bindir()
        self.ports = {"primary": free_port(), "replica": free_port()}
        # PostgreSQL refuses to run as root: run its tools as the postgres user then.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bindir / tool), *args], check=True,
                       capture_output=True, cwd=self.root, timeout=60)

    def url(self, which: str, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports[which]}/{database}"

    def _start(self, which: str) -> None:
        self.run("pg_ctl", "-D", str(self.root / which), "-l", str(self.root / f"{which}.log"),
                 "-w", "-t", "30", "-o",
                 f"-p {self.ports[which]} -k {self.root} -c listen_addresses=127.0.0.1",
                 "start")

    def start(self) -> None:
        primary = self.root / "primary"
        self.run("initdb", "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--no-sync")
        with (primary / "postgresql.conf").open("a") as conf:
            # Speed over durability: the servers live for one test.
            conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                       "wal_level = replica\nmax_wal_senders = 4\n")
        self._start("primary")
        self.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.ports["primary"]),
                 "-U", "postgres", "-D", str(self.root / "replica"), "-R", "-X", "stream",
                 "--no-sync")
        self._start("replica")

    def stop(self) -> None:
        for which in ("replica", "primary"):
            if (self.root / which / "postmaster.pid").exists():
                with contextlib.suppress(subprocess.CalledProcessError):
                    self.run("pg_ctl", "-D", str(self.root / which), "-m", "immediate", "-w",
                             "stop")


@pytest.fixture
def servers() -> Iterator[ServerPair]:
    # Outside pytest's temporary root, which is 0700 to the postgres user.
    root = Path(tempfile.mkdtemp(prefix="ledger-replica-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    pair = ServerPair(root)
    try:
        pair.start()
        yield pair
    finally:
        pair.stop()
        shutil.rmtree(root, ignore_errors=True)


def _primary_rows(url: str, project_id: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM logs WHERE project_id = %s",
                           (project_id,)).fetchone()
    assert row is not None
    return int(row[0])


async def _primary_has(url: str, project_id: str, count: int) -> bool:
    """``_primary_rows`` off the event loop: the writers run in this loop, and a count that
    waits on a lock one of them holds (this month's partition being created) would otherwise
    block the loop the writer needs to commit — a hang, not a failure."""
    return await asyncio.to_thread(_primary_rows, url, project_id) == count


def _replay(replica_url: str, action: str) -> None:
    with psycopg.connect(replica_url, autocommit=True) as conn:
        conn.execute(f"SELECT pg_wal_replay_{action}()")


async def test_reads_come_from_the_replica_and_writes_stay_on_the_primary(
        servers: ServerPair, redis_url: str, tmp_path: Path) -> None:
    primary = servers.url("primary", "ledger_logs")
    replica = servers.url("replica", "ledger_logs")
    ensure_database(primary)
    with psycopg.connect(primary) as conn:
        migrate(conn, "logs")
    settings = Settings(logs_database_url=primary, query_database_url=replica,
                        redis_url=redis_url, internal_token="replica-test-token",
                        data_dir=tmp_path, ingest_listen="127.0.0.1:0",
                        query_listen="127.0.0.1:0", ingest_writers=1)
    project = str(uuid.uuid4())
    # The replica is read-only: the daemon must start on it (schema check on the primary).
    await wait_until(lambda: _replica_has_schema(replica), "the replica has the migrations")
    query_daemon = create_query(settings)
    await query_daemon.start()
    query = QueryClient(f"127.0.0.1:{query_daemon.port}", "replica-test-token")

    async def seen() -> int:
        page = await query.list_logs(project, retention_days=90, params={"limit": "100"})
        return len(orjson.loads(page.logs_json))

    try:
        health = await query.check_health()
        assert health.healthy and health.checks["postgres_reads"] == "ok", health.checks
        async with running_ingest(settings) as (_, ingest):
            batch = [log(i) for i in range(9)] + [error_log(9)]
            assert (await send(ingest, project, {"logs": batch})).accepted == 10
            await wait_until(lambda: _primary_has(primary, project, 10), "stored on primary")
            await wait_until(lambda: _seen_is(seen, 10), "10 logs read through the replica",
                             interval=0.05)

            _replay(replica, "pause")
            assert (await send(ingest, project, {"logs": [log(i) for i in range(5)]})
                    ).accepted == 5
            await wait_until(lambda: _primary_has(primary, project, 15), "stored on primary")
            # The primary has 15; the daemon still reads 10: its reads go to the replica.
            assert await seen() == 10

            groups = orjson.loads((await query.list_error_groups(project, {})).groups_json)
            assert len(groups) == 1
            # A write: the replica would refuse it (read-only); it lands on the primary.
            changed = orjson.loads(await query.update_error_group_status(
                [project], str(groups[0]["id"]), "resolved"))
            assert changed["status"] == "resolved"
            stale = orjson.loads(await query.get_error_group([project], str(groups[0]["id"])))
            assert stale["status"] == "unresolved"  # what a replica that lags shows

            _replay(replica, "resume")
            await wait_until(lambda: _seen_is(seen, 15), "the replica caught up", interval=0.05)
            fresh = orjson.loads(await query.get_error_group([project], str(groups[0]["id"])))
            assert fresh["status"] == "resolved"
    finally:
        await query.close()
        await query_daemon.stop()


async def _seen_is(seen: object, expected: int) -> bool:
    assert callable(seen)
    return bool(await seen() == expected)


def _replica_has_schema(url: str) -> bool:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT to_regclass('public.logs') IS NOT NULL").fetchone()
    except psycopg.OperationalError:
        return False
    return bool(row and row[0])
