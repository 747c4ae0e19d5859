"""What ``appendfsync always`` costs against ``everysec`` on the enqueue step (issue 9).

    .venv/bin/python bench/bench_durability.py [--seconds 5] [--rounds 2]

Two embedded Redis servers (AOF in a temp folder on the same disk), one per mode, take the
ingest daemon's own enqueue script in the two shapes ingest sends it:

- batch path: ``Queue.enqueue`` of 1 000-log entries from 4 concurrent callers (what batch
  requests become);
- single-log path: ``Queue.enqueue_many`` of 1-log jobs from 4 concurrent callers, each call
  carrying 32 requests (the gateway coalesces concurrent singles into one call, ingest sends
  them in one pipeline), and the worst case: 1-log ``Queue.enqueue`` calls one at a time from
  one caller (an idle gateway, one client).

Modes are interleaved round by round so that a shared, noisy machine weighs on both alike.
The figure is logs/s queued; only the Redis step changes between modes, so the ratio is the
upper bound of what the whole ingest path loses.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis

from ledger.core import events
from ledger.embedded import EmbeddedRedis
from ledger.queue.client import Enqueue, Queue
from ledger.queue.entries import EntryBuilder

MODES = ("everysec", "always")
MAX_DEPTH = 10**12


def _entry(project: str, n: int) -> EntryBuilder:
    now = datetime.now(UTC)
    entry = EntryBuilder(project)
    for i in range(n):
        clean = {"timestamp": now.isoformat(), "level": "info",
                 "message": f"GET /api/orders/{i} 200 in 12ms", "attributes": {"n": i}}
        valid, _ = events.validate_batch([clean], now=now, retention_days=90, max_items=1)
        entry.add(events.enrich(valid[0], project_id=project, now=now))
    return entry


async def _for(seconds: float, callers: int, step: Callable[[], Awaitable[int]]) -> float:
    """Logs/s that ``callers`` concurrent loops of ``step`` queue in ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            done += await step()

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(callers)))
    return done / (time.perf_counter() - start)


async def _shapes(url: str, seconds: float) -> dict[str, float]:
    client = aioredis.Redis.from_url(url)
    queue = Queue(client)
    project = str(uuid.uuid4())
    batch, single = _entry(project, 1000), _entry(project, 1)

    async def one_batch() -> int:
        await queue.enqueue(project, batch, max_depth=MAX_DEPTH)
        return 1000

    async def coalesced() -> int:
        await queue.enqueue_many([Enqueue(project, single, 0, (), ())] * 32,
                                 max_depth=MAX_DEPTH)
        return 32

    async def lone() -> int:
        await queue.enqueue(project, single, max_depth=MAX_DEPTH)
        return 1

    out = {"batch (4 callers, 1000 logs/entry)": await _for(seconds, 4, one_batch),
           "single, coalesced (4 callers x 32)": await _for(seconds, 4, coalesced),
           "single, one at a time (1 caller)": await _for(seconds, 1, lone)}
    await client.flushall()  # the next round starts from an empty AOF-backed dataset
    await client.aclose()
    return out


async def main(seconds: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ledger-bench-fsync-") as tmp:
        servers = {mode: EmbeddedRedis(Path(tmp) / mode, appendfsync=mode) for mode in MODES}
        urls = {mode: server.start() for mode, server in servers.items()}
        try:
            results: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
            for _ in range(rounds):
                for mode in MODES:
                    for shape, rate in (await _shapes(urls[mode], seconds)).items():
                        results[mode].setdefault(shape, []).append(rate)
        finally:
            for server in servers.values():
                server.stop()
    print(f"{'shape':40} {'everysec logs/s':>16} {'always logs/s':>14} {'cost':>7}")
    for shape in results["everysec"]:
        fast = sum(results["everysec"][shape]) / rounds
        slow = sum(results["always"][shape]) / rounds
        print(f"{shape:40} {fast:16,.0f} {slow:14,.0f} {1 - slow / fast:7.1%}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per shape, mode and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rounds))
