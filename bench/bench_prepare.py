"""Ingest's per-log work in one process: ``prepare`` CPU µs per log, typed path vs general path.

    .venv/bin/python bench/bench_prepare.py [--rounds 9] [--requests 10]

The bodies are those of ``bench_writers.make_requests`` (1 000 logs each, one in 20 an error with
a stack trace). Each round prepares every body on the typed path (``events.typed_records``, the
default) and then with it switched off (the general path it short-cuts), so a load swing hits
both alike; the table gives the median and the best round of each, in process CPU time.
A third row prepares the same bodies with every error's message the same ("checkout failed"):
the 50 errors of a batch are then 7 distinct ones (their ``error_message`` takes 7 values),
which a batch fingerprints once each.
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


def body(first: int, count: int = 1000, *, repeated_errors: bool = False) -> bytes:
    """A batch as ``bench_writers.make_requests`` sends it (errors repeated: one message)."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    logs = [sample_log(i, start) for i in range(first, first + count)]
    if repeated_errors:
        for log in logs:
            if log["level"] == "error":
                log["message"] = "checkout failed"
    return orjson.dumps({"logs": logs})


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
    repeated = [body(k * 1000, repeated_errors=True) for k in range(args.requests)]
    typed: Callable[..., Any] = events.typed_records
    results: dict[str, list[float]] = {"typed path": [], "typed path, errors repeated": [],
                                       "general path": []}
    for _ in range(args.rounds):
        results["typed path"].append(per_log(bodies, project))
        results["typed path, errors repeated"].append(per_log(repeated, project))
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
