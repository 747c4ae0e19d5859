"""A running stack (auth, ingest with its writers, gateway) and reading back what it stored."""

from __future__ import annotations

import asyncio
import time
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
from ledger.core import api_keys
from ledger.core.bootstrap import ensure_default_setup
from ledger.db import partitions
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


@pytest.fixture
def running_stack(settings: Settings, tmp_path: Path) -> Iterator[RunningStack]:
    """auth, ingest and gateway as real processes, with the default project and its key."""
    setup = asyncio.run(ensure_default_setup(settings))
    assert setup.full_key is not None
    with psycopg.connect(str(settings.logs_database_url), autocommit=True) as conn:
        partitions.ensure_months_sync(conn, partitions.months_ahead(datetime.now(UTC)))
    with Stack(settings, tmp_path) as stack:
        stack.start("auth", "ingest", "gateway")
        yield RunningStack(stack, setup.full_key, str(setup.project.id))
