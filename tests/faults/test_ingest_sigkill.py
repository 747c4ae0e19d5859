"""A real `ledger serve ingest` killed with SIGKILL mid-stream loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from ledger.config import Settings
from ledger.errors import UnavailableError
from ledger.queue import names
from ledger.rpc.ingest_client import IngestClient
from tests.ingest_support import log, send
from tests.stack import Stack
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

BATCHES = 24
BATCH_SIZE = 500
KILL_AFTER = 8


def batch(number: int) -> dict[str, list[dict[str, object]]]:
    """Logs with the client's own ids, so that a retried request is the same logs again."""
    logs = []
    for i in range(BATCH_SIZE):
        record = log(number * BATCH_SIZE + i, log_id=str(uuid.uuid4()))
        if i % 50 == 0:
            record |= {"level": "error", "log_type": "exception", "error_type": "E",
                       "error_message": "boom"}
        logs.append(record)
    return {"logs": logs}


def stored_counts(url: str, project: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT id) FROM logs WHERE project_id = %s",
                           (project,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def test_sigkill_mid_stream_loses_and_duplicates_nothing(settings: Settings,
                                                                tmp_path: Path) -> None:
    url = str(settings.logs_database_url)
    project = str(uuid.uuid4())
    bodies = [batch(n) for n in range(BATCHES)]
    with Stack(settings, tmp_path) as stack:
        stack.start("ingest")
        client = IngestClient(f"127.0.0.1:{stack.ports['ingest']}",
                              str(settings.internal_token), timeout=5.0)
        queue = redis.Redis.from_url(str(settings.redis_url))
        try:
            # The first batches at once, then SIGKILL while the writers are busy with them.
            first = await asyncio.gather(*(send(client, project, bodies[n])
                                           for n in range(KILL_AFTER)))
            assert all(r.accepted == BATCH_SIZE for r in first)
            depth_at_kill = int(queue.get(names.queue_depth(project)) or 0)
            stack.kill("ingest")
            assert depth_at_kill > 0, "the writers had already stored everything"
            number = KILL_AFTER
            while number < BATCHES:
                try:
                    response = await send(client, project, bodies[number])
                except UnavailableError:
                    # What an SDK does: retry the same logs (same ids) once ingest is back.
                    if not stack.daemons["ingest"].alive():
                        stack.start("ingest")
                    await asyncio.sleep(0.05)  # the channel reconnects on its own
                    continue
                assert response.accepted == BATCH_SIZE
                # A retry of a request whose answer was lost: its logs are queued twice.
                if number == KILL_AFTER + 1:
                    await send(client, project, bodies[number])
                number += 1
        finally:
            await client.close()
        expected = BATCHES * BATCH_SIZE
        await wait_until(lambda: stored_counts(url, project)[0] >= expected,
                         "the writers stored every log")
        assert stored_counts(url, project) == (expected, expected)
        with psycopg.connect(url) as conn:
            groups = conn.execute("SELECT event_count FROM error_groups WHERE project_id = %s",
                                  (project,)).fetchall()
        assert groups == [(expected // 50,)]  # every error counted once
        try:
            await wait_until(lambda: int(queue.get(names.queue_depth(project)) or 0) == 0,
                             "the queue depth went back to zero")
            assert int(queue.get(names.queue_depth(project)) or 0) == 0
            assert queue.xlen(names.queue_stream(project)) == 0
            assert queue.xpending(names.queue_stream(project), names.WRITER_GROUP)["pending"] == 0
        finally:
            queue.close()
        assert stack.stop("ingest") == 0  # SIGTERM: a clean exit
