"""CPU per request of ``Queue.enqueue_many`` for coalesced single-log requests (issue 17).

    .venv/bin/python bench/bench_enqueue_cpu.py [--batch 16] [--calls 3000] [--projects 1]

What the ingest daemon pays for the queue step of one single-log request, without HTTP, gRPC
or validation around it: ``enqueue_many`` calls of ``--batch`` 1-log requests spread over
``--projects`` projects, one after the other, against an embedded Redis of its own (6.2, AOF
without fsync, so that the disk weighs little). Prints the client's CPU (this process, user +
system) and the Redis server's CPU (``INFO cpu``), each in µs per request. Only the code that
``ledger`` resolves to changes between two runs, so run it from two checkouts (e.g. with
``PYTHONPATH=<base checkout>``) alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from ledger.core import events
from ledger.embedded import EmbeddedRedis
from ledger.queue.client import Enqueue, Queue
from ledger.queue.entries import EntryBuilder


def _entry(project: str) -> EntryBuilder:
    now = datetime.now(UTC)
    clean = {"timestamp": now.isoformat(), "level": "info",
             "message": "GET /api/orders/17 200 in 12ms", "attributes": {"n": 17}}
    valid, _ = events.validate_batch([clean], now=now, retention_days=90, max_items=1)
    entry = EntryBuilder(project)
    entry.add(events.enrich(valid[0], project_id=project, now=now))
    return entry


async def _server_cpu(client: aioredis.Redis) -> float:
    info: Any = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        server = EmbeddedRedis(Path(folder) / "redis", appendfsync="no")
        url = server.start()
        client = aioredis.Redis.from_url(url)
        try:
            queue = Queue(client)
            projects = [str(uuid.uuid4()) for _ in range(args.projects)]
            jobs = [Enqueue(projects[i % len(projects)], _entry(projects[i % len(projects)]))
                    for i in range(args.batch)]
            await queue.enqueue_many(jobs, max_depth=10**12)  # scripts loaded, projects known
            server_before, before = await _server_cpu(client), time.process_time()
            started = time.perf_counter()
            for _ in range(args.calls):
                results = await queue.enqueue_many(jobs, max_depth=10**12)
                assert all(isinstance(r, tuple) for r in results), results
            elapsed = time.perf_counter() - started
            client_cpu = time.process_time() - before
            server_cpu = await _server_cpu(client) - server_before
        finally:
            await client.aclose()
            server.stop()
    requests = args.calls * args.batch
    print(f"load {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; batch {args.batch},"
          f" projects {args.projects}, {requests} requests in {elapsed:.1f} s")
    print(f"client CPU per request  {client_cpu / requests * 1e6:7.1f} µs")
    print(f"Redis CPU per request   {server_cpu / requests * 1e6:7.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="requests per enqueue_many call")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--projects", type=int, default=1)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
