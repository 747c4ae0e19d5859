"""What one coalesced batch costs over each gateway -> ingest transport: a unary
``IngestLogsMany`` call against one message on the long-lived ``IngestStream``.

    .venv/bin/python bench/bench_ingest_transport.py [--batches 1000] [--sizes 1,16]

Client and ingest daemon (no writers) run in this one process, on embedded PostgreSQL and
Redis, so the process's CPU time per batch is both sides of the transport plus ingest's work
(prepare, the Redis enqueue) for the batch's single-log requests. The two transports take
turns, twice each, so a change in the machine's load hits both alike. Prints one table.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
from harness import GENEROUS_LIMITS, migrated_servers, print_results

from ledger.core.rpc_models import IngestRequest, IngestResult
from ledger.errors import LedgerError

Send = Callable[[Sequence[IngestRequest]], Awaitable[list[IngestResult | LedgerError]]]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(args: argparse.Namespace) -> None:
    from ledger.daemons.ingest import create
    from ledger.rpc.ingest_client import IngestClient

    rows: list[tuple[str, str]] = [("load before (1/5/15 min)",
                                    " / ".join(f"{x:.2f}" for x in os.getloadavg()))]
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp, \
            migrated_servers(Path(tmp), **GENEROUS_LIMITS) as settings:
        daemon = create(settings.with_overrides(ingest_writers=0, ingest_listen="127.0.0.1:0"))
        await daemon.start()
        client = IngestClient(f"127.0.0.1:{daemon.port}", str(settings.internal_token))
        project = str(uuid.uuid4())
        body = orjson.dumps({"timestamp": datetime.now(UTC).isoformat(), "level": "info",
                             "message": "GET /checkout answered 200"})
        try:
            sends: dict[str, Send] = {"unary IngestLogsMany": client.ingest_logs_many,
                                      "IngestStream message": client.ingest_logs_stream}
            for size in args.sizes:
                batch = [IngestRequest(project, "single", body, 90, 0)] * size
                figures: dict[str, list[tuple[float, float]]] = {name: [] for name in sends}
                for _ in range(2):
                    for name, send in sends.items():
                        for _ in range(50):  # warm: connections, caches, the stream open
                            await send(batch)
                        cpu, wall = cpu_seconds(), time.perf_counter()
                        for _ in range(args.batches):
                            await send(batch)
                        figures[name].append(((cpu_seconds() - cpu) / args.batches,
                                              (time.perf_counter() - wall) / args.batches))
                for name, runs in figures.items():
                    cpu_each = sorted(c for c, _ in runs)
                    rows.append((f"{name}, {size} request(s) per batch",
                                 f"CPU {' / '.join(f'{c * 1e6:,.0f}' for c in cpu_each)} µs"
                                 f" per batch ({min(cpu_each) / size * 1e6:,.0f} µs per"
                                 f" request at best), wall {min(w for _, w in runs) * 1e6:,.0f}"
                                 " µs"))
        finally:
            await client.close()
            await daemon.stop()
    rows.append(("load after (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())))
    print_results(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--sizes", default="1,16",
                        type=lambda text: [int(x) for x in text.split(",")])
    args = parser.parse_args()
    import uvloop

    uvloop.run(measure(args))


if __name__ == "__main__":
    main()
