"""Ingest's per-log work in one process: ``prepare`` CPU µs per log, typed path vs general path.

    .venv/bin/python bench/bench_prepare.py [--rounds 9] [--requests 10]

The bodies are those of ``bench_writers.make_requests`` (1 000 logs each, one in 20 an error with
a stack trace). Each round prepares every body on the typed path (``events.typed_records``, the
default) and then with it switched off (the general path it short-cuts), so a load swing hits
both alike; the table gives the median and the best round of each, in process CPU time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ledger.core import events
from ledger.daemons.ingest.service import prepare
from ledger.proto import ingest_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_writers import sample_log


def body(first: int, count: int = 1000) -> bytes:
    """A batch as ``bench_writers.make_requests`` sends it."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    return orjson.dumps({"logs": [sample_log(i, start) for i in range(first, first + count)]})


def per_log(bodies: list[bytes], project: str) -> float:
    """CPU µs per log to prepare every body once."""
    began = time.process_time()
    for raw in bodies:
        prepare(project, ingest_pb2.INGEST_SHAPE_BATCH, raw, retention_days=90,
                now=datetime.now(UTC))
    return (time.process_time() - began) / (len(bodies) * 1000) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    project = str(uuid.uuid4())
    bodies = [body(k * 1000) for k in range(args.requests)]
    typed: Callable[..., Any] = events.typed_records
    results: dict[str, list[float]] = {"typed path": [], "general path": []}
    for _ in range(args.rounds):
        results["typed path"].append(per_log(bodies, project))
        events.typed_records = lambda *_, **__: None
        try:
            results["general path"].append(per_log(bodies, project))
        finally:
            events.typed_records = typed
    print(f"{args.rounds} rounds of {args.requests} requests of 1 000 logs\n")
    print("| path | prepare CPU µs per log, median | best |")
    print("|---|---|---|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} |")


if __name__ == "__main__":
    main()
