"""Shared fixtures: real PostgreSQL and Redis, a fresh database and Redis db for every test.

``LEDGER_TEST_POSTGRES_URL`` / ``LEDGER_TEST_REDIS_URL`` name running servers; when unset, the
session starts the embedded ones (the same code ``ledger up`` uses). Migrations run once into a
template database per session; each test gets ``CREATE DATABASE ... TEMPLATE`` (milliseconds).
Names carry the pytest process id so that two test runs on one server do not collide. Redis: a
run uses only the databases ``LEDGER_TEST_REDIS_DBS`` allows (default: the URL's own), and only
one it has claimed (``tests/redis_claims.py``), so it never flushes another run's data.
"""

from __future__ import annotations

import itertools
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from psycopg import sql

from ledger.config import Settings, prepare_grpc_core
from ledger.db import migrate
from ledger.db.pool import with_database
from ledger.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.redis_claims import CLAIM_KEY, CLAIM_SECONDS, redis_dbs, url_of_db

RUN = f"t{os.getpid()}"

# pytest-xdist starts its workers with COLUMNS=80 for their own reports; rich reads COLUMNS
# once, when ``ledger.cli.output`` makes its consoles, and would then draw every CLI table of
# the worker 80 wide whatever COLUMNS a test gives the CLI. A worker sees the terminal a serial
# run sees.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
# Tests start embedded servers and `ledger` processes while in-process gRPC servers and
# channels are busy: the same settings as the `ledger` command, before any of them starts.
prepare_grpc_core()
_counter = itertools.count()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``pytest -n auto`` (what ``make test`` runs): a worker per core, but never more workers
    than Redis databases the run may use. Every worker claims a database of its own
    (``redis_db_url``), so with only the one ``LEDGER_TEST_REDIS_URL`` names the run stays a
    single worker instead of failing; the embedded Redis (no URL) is one per worker."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = max(1, cores or 1)
    url = os.environ.get("LEDGER_TEST_REDIS_URL")
    if url:
        workers = min(workers, len(set(redis_dbs(url, os.environ.get("LEDGER_TEST_REDIS_DBS")))))
    return workers


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ledger-tests-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def pg_server_url(tmp_root: Path) -> Iterator[str]:
    """URL of a PostgreSQL server (any database on it) the tests may create databases in."""
    url = os.environ.get("LEDGER_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    server = EmbeddedPostgres(tmp_root / "pg")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def redis_server_url(tmp_root: Path) -> Iterator[str]:
    url = os.environ.get("LEDGER_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_root / "redis")
    yield server.start()
    server.stop()


_DROP = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def db_url(server_url: str, name: str) -> str:
    return with_database(server_url, name)


def _admin(server_url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(db_url(server_url, "postgres"), autocommit=True)


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    with _admin(server_url) as conn:
        conn.execute(_DROP.format(sql.Identifier(name)))
        if template:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return db_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with _admin(server_url) as conn:
        conn.execute(_DROP.format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def templates(pg_server_url: str) -> Iterator[dict[str, str]]:
    """Migrated template databases, one per Ledger database, made once per session."""
    names = {db: f"ledger_{RUN}_tpl_{db}" for db in migrate.DATABASES}
    for database, name in names.items():
        url = create_database(pg_server_url, name)
        with psycopg.connect(url) as conn:
            migrate.migrate(conn, database)
    yield names
    for name in names.values():
        drop_database(pg_server_url, name)


def _fresh(pg_server_url: str, template: str, database: str) -> Iterator[str]:
    name = f"ledger_{RUN}_{next(_counter)}_{database}"
    yield create_database(pg_server_url, name, template)
    drop_database(pg_server_url, name)


@pytest.fixture
def auth_db_url(pg_server_url: str, templates: dict[str, str]) -> Iterator[str]:
    """A migrated auth database of this test's own."""
    yield from _fresh(pg_server_url, templates["auth"], "auth")


@pytest.fixture
def logs_db_url(pg_server_url: str, templates: dict[str, str]) -> Iterator[str]:
    """A migrated logs database of this test's own."""
    yield from _fresh(pg_server_url, templates["logs"], "logs")


@pytest.fixture(scope="session")
def redis_db_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database of this run's own, among the allowed ones, claimed for the session.

    Another run on the same server (or anything else) holding a database's claim key keeps it:
    its data is never flushed here. The claim expires by itself if this run dies.
    """
    token = f"{RUN}-{secrets.token_hex(4)}".encode()
    for db in redis_dbs(redis_server_url, os.environ.get("LEDGER_TEST_REDIS_DBS")):
        url = url_of_db(redis_server_url, db)
        client = redis.Redis.from_url(url)
        if client.set(CLAIM_KEY, token, nx=True, ex=CLAIM_SECONDS):
            _claims[url] = token
            try:
                yield url
            finally:
                if client.get(CLAIM_KEY) == token:
                    client.flushdb()  # ours still: leave it empty and unclaimed
                client.close()
            return
        client.close()
    pytest.exit("every Redis database the tests may use is claimed by another run; set"
                " LEDGER_TEST_REDIS_DBS to a range (e.g. 1-15) or wait", returncode=4)


_claims: dict[str, bytes] = {}


def _empty(client: redis.Redis, token: bytes) -> None:
    """Flush the claimed db and claim it again, in one MULTI (no moment without a claim)."""
    if client.get(CLAIM_KEY) != token:
        pytest.fail(f"lost the claim of {client} (expired or taken): refusing to flush it")
    with client.pipeline(transaction=True) as pipe:
        pipe.flushdb()
        pipe.set(CLAIM_KEY, token, ex=CLAIM_SECONDS)
        pipe.execute()


@pytest.fixture
def redis_url(redis_db_url: str) -> Iterator[str]:
    """An empty Redis logical database for this test (flushed before and after), holding only
    this run's claim key (``CLAIM_KEY``)."""
    client = redis.Redis.from_url(redis_db_url)
    token = _claims[redis_db_url]
    _empty(client, token)
    yield redis_db_url
    _empty(client, token)
    client.close()


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _settings(auth_db_url: str, logs_db_url: str, redis_url: str, tmp: Path) -> Settings:
    return Settings(
        auth_database_url=auth_db_url,
        logs_database_url=logs_db_url,
        redis_url=redis_url,
        internal_token=secrets.token_urlsafe(16),
        jwt_secret=secrets.token_urlsafe(32),
        data_dir=tmp / "data",
        gateway_listen="127.0.0.1:0",
        auth_listen="127.0.0.1:0",
        ingest_listen="127.0.0.1:0",
        query_listen="127.0.0.1:0",
    )


@pytest.fixture
def settings(auth_db_url: str, logs_db_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings for daemons under test: fresh databases, own Redis db, ports chosen by the OS."""
    return _settings(auth_db_url, logs_db_url, redis_url, tmp_path)


def module_settings_for(pg_server_url: str, templates: dict[str, str], redis_db_url: str,
                        tmp: Path) -> Iterator[Settings]:
    """``settings`` shared by the tests of one module (a stack started once for all of them):
    databases of the module's own, and the run's Redis database emptied before and after."""
    client = redis.Redis.from_url(redis_db_url)
    token = _claims[redis_db_url]
    _empty(client, token)
    auth = _fresh(pg_server_url, templates["auth"], "auth")
    logs = _fresh(pg_server_url, templates["logs"], "logs")
    try:
        yield _settings(next(auth), next(logs), redis_db_url, tmp)
    finally:
        for made in (auth, logs):
            next(made, None)  # drops the database
        _empty(client, token)
        client.close()
