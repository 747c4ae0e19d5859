"""Writers on one Redis server vs a 3-master Redis Cluster, many projects (README: Redis Cluster).

    .venv/bin/python bench/bench_cluster.py [--projects 48] [--logs 2000] [--writers 2]

Starts a 3-master Redis Cluster (one replica each) on loopback ports, uses
``LEDGER_TEST_REDIS_URL`` (or an embedded Redis) as the one server and
``LEDGER_TEST_POSTGRES_URL`` (or an embedded PostgreSQL) for a fresh logs database. Each round,
alternating the two so that both see the same machine load:

1. drain: ``--projects`` projects each queue ``--logs`` logs (requests of 1 000, untimed), then
   ``--writers`` writers drain every queue; timed from start to all depths 0. On the cluster the
   projects' streams lie on all three masters, so a round is one XREADGROUP per slot.
2. trickle: one single-log request at a time to a project while the writers are idle; the time
   from the enqueue to its depth back at 0 (read, COPY, commit, ack), median of 20.
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_writers import make_requests  # noqa: E402
from bench.harness import logs_database  # noqa: E402
from ledger import bus  # noqa: E402
from ledger.daemons.ingest.writer import Streams, Writer  # noqa: E402
from ledger.db.pool import async_pool  # noqa: E402
from ledger.queue import names  # noqa: E402
from ledger.queue.client import Queue  # noqa: E402
from tests import redis_cluster  # noqa: E402


async def _depth(redis: Any, projects: list[str]) -> int:
    return sum([int(await redis.get(names.queue_depth(p)) or 0) for p in projects])


async def run(url: str, redis_url: str, projects: int, logs: int, writers: int,
              ) -> tuple[float, float]:
    """(logs/s draining ``projects`` queues, median ms enqueue → stored of a lone log)."""
    redis = bus.client(redis_url)
    queue = Queue(redis)
    ids = [str(uuid.uuid4()) for _ in range(projects)]
    for project in ids:  # untimed: this is the ingest side
        for prepared in make_requests(project, logs):
            await queue.enqueue(project, prepared.entry, max_depth=10**9,
                                notifications=prepared.notifications)
    pool = async_pool(url, name="bench", max_size=writers + 1, check=False)
    await pool.open(wait=True)
    stopping = asyncio.Event()
    streams = Streams(redis)
    await streams.refresh(force=True)
    months: set[Any] = set()
    crew = [Writer(f"bench-w{i}", redis, queue, pool, streams, max_attempts=5,
                   stopping=stopping, known_months=months) for i in range(writers)]
    began = time.perf_counter()
    tasks = [asyncio.create_task(w.run()) for w in crew]
    while await _depth(redis, ids) > 0:  # noqa: ASYNC110 (polling Redis is the measure)
        await asyncio.sleep(0.005)
    drain = projects * logs / (time.perf_counter() - began)
    lone = []
    for n in range(20):
        [prepared] = make_requests(ids[n % len(ids)], 1, offset=10**6 + n)
        await asyncio.sleep(0.1)  # the writers are idle again (blocked, or polling)
        began = time.perf_counter()
        await queue.enqueue(ids[n % len(ids)], prepared.entry, max_depth=10**9)
        while await _depth(redis, [ids[n % len(ids)]]) > 0:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        lone.append((time.perf_counter() - began) * 1000)
    stopping.set()
    await asyncio.gather(*tasks)
    await pool.close()
    await redis.aclose()
    return drain, statistics.median(lone)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=48)
    parser.add_argument("--logs", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-bench-cluster-") as tmp, \
            logs_database(Path(tmp), "cluster") as (url, single_url):
        cluster = redis_cluster.start(Path(tmp) / "cluster")
        try:
            results: dict[str, list[tuple[float, float]]] = {"one server": [], "cluster": []}
            for round_number in range(args.rounds):
                for label, redis_url in (("one server", single_url), ("cluster", cluster.url)):
                    results[label].append(await run(url, redis_url, args.projects, args.logs,
                                                     args.writers))
                print(f"round {round_number + 1}: " + ", ".join(
                    f"{k} {v[-1][0]:,.0f} logs/s, lone log {v[-1][1]:.1f} ms"
                    for k, v in results.items()), flush=True)
        finally:
            cluster.stop()
    print()
    print(f"{args.projects} projects x {args.logs:,} logs, {args.writers} writers,"
          f" {os.cpu_count()} CPUs, median of {args.rounds} rounds")
    print(f"{'redis':<14}{'drain logs/s':>14}{'lone log ms':>13}")
    for label, rows in results.items():
        print(f"{label:<14}{statistics.median(r[0] for r in rows):>14,.0f}"
              f"{statistics.median(r[1] for r in rows):>13.1f}")


if __name__ == "__main__":
    asyncio.run(main())
