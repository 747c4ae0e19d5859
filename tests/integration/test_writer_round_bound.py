"""Issue 9 item 6: one writer round pulls a bounded number of logs into memory.

A round asked every project stream (up to 256) for 4 entries of up to 1 000 logs each: a
million logs at once with enough busy projects. Now a round names only as many streams as fit
in ``max_logs_per_round``, judged by the biggest entry recently read, and rotates over the rest.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from ledger.daemons.ingest.writer import Streams, Writer
from ledger.queue.client import Queue
from ledger.rpc.ingest_client import IngestClient
from tests.ingest_support import log, new_project, send
from tests.integration.test_writers import paused as paused  # ingest without writers
from tests.integration.test_writers import pool as pool

PROJECTS = 5
ENTRIES = 3
SIZE = 100
BUDGET = 250


async def test_a_round_never_pulls_more_than_its_budget_and_every_project_gets_turns(
        paused: IngestClient, aredis: aioredis.Redis, pool: AsyncConnectionPool) -> None:
    projects = [new_project() for _ in range(PROJECTS)]
    for project in projects:
        for n in range(ENTRIES):
            await send(paused, project, {"logs": [log(n * SIZE + i) for i in range(SIZE)]})
    writer = Writer("bound-w0", aredis, Queue(aredis), pool, Streams(aredis), max_attempts=5,
                    stopping=asyncio.Event(), max_logs_per_round=BUDGET)
    read: dict[str, int] = {}
    for _ in range(PROJECTS * ENTRIES * 2):
        entries = await writer.read()
        assert sum(entry.n for entry in entries) <= BUDGET
        for entry in entries:
            read[entry.project_id] = read.get(entry.project_id, 0) + entry.n
        if sum(read.values()) == PROJECTS * ENTRIES * SIZE:
            break
    assert read == dict.fromkeys(projects, ENTRIES * SIZE)
