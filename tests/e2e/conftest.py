"""A running stack (auth, ingest with its writers, gateway) and reading back what it stored.

``running_stack`` is one stack per test module, shared by its tests: starting three daemons
costs seconds of CPU (each imports FastAPI, grpc, psycopg and redis), and most e2e tests only
send logs and read back their own. Each test gets a project and API key of its own on the
shared stack, so what it reads back (rows, queue depth, rate limits) is only what it sent.
A test that kills or stops a daemon of the shared stack gets it back before the next test.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from ledger.config import Settings
from ledger.core import api_keys, projects
from ledger.core.bootstrap import DEFAULT_ENVIRONMENT, ensure_default_setup
from ledger.db import partitions
from tests.conftest import module_settings_for
from tests.stack import Stack
from tests.waiting import wait_until_blocking


def wait_queue_drained(url: str, key: str, timeout: float = 15.0) -> None:
    """Until the key's project has nothing queued: everything accepted is in PostgreSQL."""
    wait_until_blocking(
        lambda: httpx.get(f"{url}/api/v1/queue/depth",
                          headers={"X-API-Key": key}).json()["queue_depth"] == 0,
        "the project's queue drained", timeout=timeout, interval=0.1)


@dataclass
class RunningStack:
    stack: Stack
    key: str
    project_id: str

    @property
    def url(self) -> str:
        return self.stack.url

    def rows(self, where: str, params: tuple[Any, ...], count: int,
             deadline_seconds: float = 15) -> list[dict[str, Any]]:
        """Rows of this project matching ``where``, polled until ``count`` are there (or the
        deadline passes; the caller asserts on what came back)."""
        deadline = time.monotonic() + deadline_seconds
        with psycopg.connect(str(self.stack.settings.logs_database_url), autocommit=True,
                             row_factory=dict_row) as conn:
            while True:
                rows = conn.execute(
                    f"SELECT * FROM logs WHERE project_id = %s AND ({where})"
                    " ORDER BY timestamp, id", (self.project_id, *params)).fetchall()
                if len(rows) >= count or time.monotonic() > deadline:
                    return rows
                time.sleep(0.1)

    def wait_drained(self) -> None:
        """Until this project's queue is empty."""
        wait_queue_drained(self.url, self.key)

    def with_marker(self, marker: str, count: int,
                    deadline_seconds: float = 15) -> list[dict[str, Any]]:
        """Rows whose message contains ``marker``."""
        return self.rows("position(%s in message) > 0", (marker,), count, deadline_seconds)

    def create_key(self, **options: Any) -> str:
        async def create() -> str:
            async with await psycopg.AsyncConnection.connect(
                    str(self.stack.settings.auth_database_url), autocommit=True) as conn:
                _, full_key = await api_keys.create_key(conn, self.project_id, **options)
                return full_key
        return asyncio.run(create())


@dataclass
class SharedStack:
    """A module's stack and the account its tests' projects belong to."""

    stack: Stack
    account_id: str
    #: The daemons started with the stack: each test starts with all of them running.
    daemons: tuple[str, ...]
    extra_env: dict[str, str]

    def heal(self) -> None:
        """Restart what a previous test killed or stopped, or restarted with an environment of
        its own (``stack.extra_env`` changed): every test starts on the stack as it was made."""
        self.stack.extra_env.clear()
        self.stack.extra_env.update(self.extra_env)
        changed = [name for name in self.daemons
                   if not self.stack.daemons[name].alive()
                   or self.stack.daemons[name].extra_env != self.extra_env]
        for name in changed:
            if self.stack.daemons[name].alive():
                self.stack.stop(name)
        if changed:
            self.stack.start(*changed)

    def new_project(self) -> tuple[str, projects.Project]:
        """A project of its own and its API key, made like ``ledger up`` makes the default."""
        settings = self.stack.settings

        async def create() -> tuple[str, projects.Project]:
            async with await psycopg.AsyncConnection.connect(
                    str(settings.auth_database_url), autocommit=True) as conn:
                slug = f"t{next(_projects)}-{uuid.uuid4().hex[:8]}"
                project = await projects.create_project(
                    conn, account_id=self.account_id, name=slug, slug=slug,
                    environment=DEFAULT_ENVIRONMENT,
                    defaults=projects.ProjectDefaults.from_settings(settings))
                _, full_key = await api_keys.create_key(conn, project.id, name="default")
                return full_key, project
        return asyncio.run(create())


_projects = itertools.count()


def start_shared_stack(settings: Settings, workdir: Path, daemons: tuple[str, ...],
                       extra_env: dict[str, str] | None = None) -> Iterator[SharedStack]:
    """Body of a module-scoped fixture: the default account, this month's partitions and
    ``daemons`` running on ``settings`` until the module is done."""
    setup = asyncio.run(ensure_default_setup(settings))
    with psycopg.connect(str(settings.logs_database_url), autocommit=True) as conn:
        partitions.ensure_months_sync(conn, partitions.months_ahead(datetime.now(UTC)))
    with Stack(settings, workdir, extra_env=dict(extra_env or {})) as stack:
        stack.start(*daemons)
        yield SharedStack(stack, str(setup.account.id), daemons, dict(extra_env or {}))


def shared_test(shared: SharedStack, request: pytest.FixtureRequest) -> None:
    """Ready the shared stack for one more test of its module.

    A test of the module that also asks for ``redis_url`` (directly or through ``settings``)
    would flush the Redis database the shared daemons are using: refused, loudly.
    """
    if "redis_url" in request.fixturenames:
        pytest.fail(f"{request.node.nodeid} uses a shared stack and a per-test Redis database"
                    " (redis_url/settings), which would flush the stack's: give the module"
                    " its own stack fixture instead")
    shared.heal()


@pytest.fixture(scope="module")
def module_settings(request: pytest.FixtureRequest, pg_server_url: str,
                    templates: dict[str, str], redis_db_url: str,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """``settings`` for one test module: its own databases, the run's Redis database emptied
    before and after the module."""
    yield from module_settings_for(pg_server_url, templates, redis_db_url,
                                   tmp_path_factory.mktemp("module"))


@pytest.fixture(scope="module")
def shared_stack(module_settings: Settings, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[SharedStack]:
    """auth, ingest and gateway for the whole module."""
    yield from start_shared_stack(module_settings, tmp_path_factory.mktemp("stack"),
                                  ("auth", "ingest", "gateway"))


@pytest.fixture
def running_stack(shared_stack: SharedStack, request: pytest.FixtureRequest) -> RunningStack:
    """The module's auth, ingest and gateway, with a project and key of this test's own."""
    shared_test(shared_stack, request)
    key, project = shared_stack.new_project()
    return RunningStack(shared_stack.stack, key, str(project.id))
