"""PostgreSQL stopped for ~20 s under ingest: every log accepted meanwhile is stored once after.

The queue absorbs: ingest goes on answering 202 (its checks need only Redis), the writers keep
their batches pending and retry, and once PostgreSQL is back they store everything, once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg
import pytest

from ledger.config import Settings
from ledger.embedded import EmbeddedPostgres
from ledger.rpc.ingest_client import IngestClient
from tests.faults.support import (
    fault_dir,
    logs,
    migrated_logs_database,
    send_until_accepted,
    stored,
    stored_ids,
    wait_stored,
)
from tests.ingest_support import new_project
from tests.stack import Stack

pytestmark = pytest.mark.e2e

AWAY_SECONDS = 20.0
SIZE = 100


async def test_postgres_away_for_20_seconds_loses_and_duplicates_nothing(
        settings: Settings, tmp_path: Path) -> None:
    project = new_project()
    with fault_dir() as folder:
        postgres = EmbeddedPostgres(folder / "pg")
        postgres.start()
        url = migrated_logs_database(postgres)
        stack = Stack(settings.with_overrides(logs_database_url=url), tmp_path)
        try:
            stack.start("ingest")
            client = IngestClient(f"127.0.0.1:{stack.ports['ingest']}",
                                  str(settings.internal_token), timeout=5.0)
            sent: set[str] = set()

            async def batch(tag: str) -> None:
                body = {"logs": logs(SIZE, tag)}
                assert await send_until_accepted(client, project, body) == SIZE
                sent.update(r["log_id"] for r in body["logs"])

            await batch("before")
            wait_stored(url, project, len(sent))
            postgres.stop()
            with pytest.raises(psycopg.OperationalError):  # really away
                psycopg.connect(url, connect_timeout=2).close()
            away_until = time.monotonic() + AWAY_SECONDS
            n = 0
            while time.monotonic() < away_until:  # a batch a second while it is away
                await batch(f"away {n}")
                n += 1
                await asyncio.sleep(1.0)
            assert n >= 10
            postgres.start()
            await batch("after")
            await client.close()
            wait_stored(url, project, len(sent), seconds=90)
            assert stored_ids(url, project) == sent
            assert stored(url, project) == (len(sent), len(sent))
            assert stack.stop("ingest") == 0
        finally:
            stack.close()
            postgres.stop()
