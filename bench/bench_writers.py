"""Writers vs raw binary COPY into the partitioned ``logs`` table (DESIGN §9: ≥ 0.7 x).

    .venv/bin/python bench/bench_writers.py [--logs 100000] [--rounds 3] [--writers 2]

Starts an embedded PostgreSQL and Redis in a temporary folder (or uses
``LEDGER_TEST_POSTGRES_URL`` / ``LEDGER_TEST_REDIS_URL``), migrates a fresh logs database, and
measures, alternating within each round so that both see the same machine load:

1. raw: psycopg binary ``COPY`` (``write_row``) of ready Python rows, 5 000 per statement,
   straight into ``logs`` (no Redis, no decoding, no error groups): the floor of the table.
2. writers: the same number of logs queued in Redis beforehand (requests of 1 000 encoded by
   the ingest path, untimed), then ``--writers`` writer tasks drain the queue: read, decode,
   COPY, error groups, commit, acknowledge. Timed from start to an empty queue.
3. writers, re-delivered: the same logs queued again (same ids), as after a crash: every batch
   takes the de-duplicating way and inserts nothing.
4. writers, staging way: new logs, but every entry also holds one log stored already (a client
   retry), so every batch takes the de-duplicating way (staging table + ``INSERT … ON CONFLICT
   DO NOTHING``) and inserts 999 of its 1 000 logs.

5 % of the logs are errors (fingerprints, error groups, notifications). Prints a table with the
median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import redis.asyncio as aioredis
from psycopg.types.json import Jsonb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import logs_database  # noqa: E402
from ledger.core import events  # noqa: E402
from ledger.daemons.ingest.service import prepare  # noqa: E402
from ledger.daemons.ingest.writer import Streams, Writer  # noqa: E402
from ledger.db.pool import async_pool  # noqa: E402
from ledger.proto import ingest_pb2  # noqa: E402
from ledger.queue import names  # noqa: E402
from ledger.queue.client import Queue  # noqa: E402

COPY_CHUNK = 5000
REQUEST = 1000


def sample_log(i: int, start: datetime) -> dict[str, Any]:
    """The ``i``-th log of a bench batch: an info line, and every 20th an exception."""
    record: dict[str, Any] = {
        "timestamp": (start + timedelta(milliseconds=i % 1_000_000)).isoformat(),
        "level": "info", "message": f"user {i} opened /api/v1/things/{i % 97}",
        "environment": "production", "release": "1.4.2", "sdk_version": "0.1.0",
        "platform": "python", "platform_version": "3.11",
        "attributes": {"user_id": i, "path": f"/api/v1/things/{i % 97}", "ok": True},
    }
    if i % 20 == 0:
        record |= {"level": "error", "log_type": "exception", "error_type": "KeyError",
                   "error_message": f"missing key {i % 7}",
                   "stack_trace": 'File "app/shop.py", line 3, in checkout\nKeyError'}
    return record


def make_requests(project: str, count: int, *, offset: int = 0,
                  repeat: dict[str, Any] | None = None) -> list[Any]:
    """Queue entries of 1 000 logs, through the real ingest preparation.

    ``repeat`` (a log with a ``log_id``) is put first in every request: a log already stored.
    """
    start = datetime.now(UTC) - timedelta(minutes=30)
    out = []
    for first in range(offset, offset + count, REQUEST):
        logs = [repeat] if repeat else []
        for i in range(first, min(first + REQUEST, offset + count) - len(logs)):
            logs.append(sample_log(i, start))
        prepared = prepare(project, ingest_pb2.INGEST_SHAPE_BATCH, orjson.dumps({"logs": logs}),
                           retention_days=90, now=datetime.now(UTC))
        out.append(prepared)
    return out


COPY_TYPES = ["uuid", "uuid", "timestamptz", "timestamptz", *["text"] * 12, "jsonb", "text",
              "text", "text[]", "text", "int2"]


def raw_rows(requests: list[Any]) -> list[tuple[Any, ...]]:
    """Ready Python rows for psycopg's binary COPY (uuid.UUID, datetime, Jsonb...)."""
    out = []
    for prepared in requests:
        for record in prepared.all_records():
            row = list(events.to_row(record))
            row[0] = uuid.UUID(row[0])
            row[16] = Jsonb(record["attributes"], dumps=orjson.dumps)
            out.append(tuple(row))
    return out


async def raw_copy(url: str, rows: list[tuple[Any, ...]]) -> float:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        began = time.perf_counter()
        for first in range(0, len(rows), COPY_CHUNK):
            async with conn.transaction(), conn.cursor() as cur, cur.copy(
                    f"COPY logs ({', '.join(events.LOG_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(COPY_TYPES)
                for row in rows[first:first + COPY_CHUNK]:
                    await copy.write_row(row)
        return time.perf_counter() - began


async def writers_drain(url: str, redis_url: str, project: str, requests: list[Any],
                        writers: int) -> float:
    redis = aioredis.Redis.from_url(redis_url)
    queue = Queue(redis)
    for prepared in requests:  # untimed: this is the ingest side
        await queue.enqueue(project, prepared.entry, max_depth=10**9,
                            notifications=prepared.notifications)
    pool = async_pool(url, name="bench", max_size=writers + 1, check=False)  # as ingest
    await pool.open(wait=True)
    stopping = asyncio.Event()
    streams = Streams(redis)
    await streams.refresh(force=True)
    months: set[Any] = set()
    crew = [Writer(f"bench-w{i}", redis, queue, pool, streams, max_attempts=5,
                   stopping=stopping, known_months=months) for i in range(writers)]
    began = time.perf_counter()
    tasks = [asyncio.create_task(w.run()) for w in crew]
    while int(await redis.get(names.queue_depth(project)) or 0) > 0:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - began
    stopping.set()
    await asyncio.gather(*tasks)
    await pool.close()
    await redis.aclose()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ledger-bench-writers-") as tmp, \
            logs_database(Path(tmp), "writers") as (url, redis_url):
        results: dict[str, list[float]] = {"raw": [], "writers": [], "dedup": [],
                                           "redelivered": []}
        for round_number in range(args.rounds):
            raw_project, project = str(uuid.uuid4()), str(uuid.uuid4())
            requests = make_requests(project, args.logs)
            ready = raw_rows(make_requests(raw_project, args.logs))  # untimed
            results["raw"].append(args.logs / await raw_copy(url, ready))
            results["writers"].append(args.logs / await writers_drain(
                url, redis_url, project, requests, args.writers))
            results["redelivered"].append(args.logs / await writers_drain(
                url, redis_url, project, requests, args.writers))
            # New logs, but each entry also holds one stored log: the de-duplicating way.
            first = requests[0].all_records()[0]
            stored_log = {"log_id": first["id"], "timestamp": first["timestamp"].isoformat(),
                          "level": "info", "message": "stored already"}
            mixed = make_requests(project, args.logs, offset=args.logs, repeat=stored_log)
            new_logs = sum(p.accepted - 1 for p in mixed)
            results["dedup"].append(new_logs / await writers_drain(
                url, redis_url, project, mixed, args.writers))
            print(f"round {round_number + 1}: " + ", ".join(
                f"{k} {v[-1]:,.0f}/s" for k, v in results.items()), flush=True)
            with psycopg.connect(url, autocommit=True) as conn:
                stored = conn.execute("SELECT count(*) FROM logs WHERE project_id = %s",
                                      (project,)).fetchone()
                assert stored == (args.logs + new_logs,), stored  # each log exactly once

    raw = statistics.median(results["raw"])
    print()
    print(f"{args.logs:,} logs per run, {args.rounds} rounds, {args.writers} writers, "
          f"{os.cpu_count()} CPUs (median rows/s)")
    print(f"{'path':<48}{'rows/s':>12}{'x raw':>8}")
    labels = {
        "raw": "raw binary COPY into logs (5 000/statement)",
        "writers": "writers: Redis -> COPY -> groups -> ack",
        "dedup": "writers, 1 stored log per entry (staging way)",
        "redelivered": "writers, whole batches re-delivered",
    }
    for key, label in labels.items():
        value = statistics.median(results[key])
        print(f"{label:<48}{value:>12,.0f}{value / raw:>8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
