"""OTLP/HTTP protobuf logs versus the native batch route, and the SDK's cost per log call.

    .venv/bin/python bench/bench_otlp.py            # own stack (embedded PostgreSQL + Redis)
    .venv/bin/python bench/bench_otlp.py --logs 30000 --rounds 6 --calls 100000

In one run on one machine, against one stack:

1. ``--rounds`` rounds (which route goes first alternates) of ``--logs`` logs each: native
   ``POST /api/v1/ingest/batch`` (JSON, 1 000 per request) and ``POST /v1/logs`` (OTLP
   protobuf, 1 000 records per request, the same content: message, level, release,
   environment, two attributes), from ``--senders`` keep-alive connections; logs/s accepted
   and logs/s stored (queue drained, rows counted). The ratio OTLP/native of each round, and
   their median, is what DESIGN §9 asks for (≥ 0.8).
2. ``ledger.sdk``: the time one ``client.info(...)`` call takes in the application's thread
   (p50/p99 over ``--calls`` calls timed one by one with ``perf_counter_ns``, which adds about
   0.1 µs), while the flusher thread sends to the same stack; the same through
   ``logging`` + ``LedgerHandler``. Nothing may be dropped (checked).

The load average is printed next to every figure: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import Connection, Target, drained, one_log, own_stack
from harness import percentile


def daemon_cpu() -> dict[str, float]:
    """CPU seconds used so far by each daemon of the stack (children of this process)."""
    import psutil

    out: dict[str, float] = {}
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = child.cmdline()
            times = child.cpu_times()
        except psutil.Error:
            continue
        name = cmdline[-1] if "serve" in cmdline else child.name()
        out[name] = out.get(name, 0.0) + times.user + times.system
    return out


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def otlp_body(count: int, offset: int) -> bytes:
    """An ExportLogsServiceRequest with the same content as ``one_log`` x ``count``.

    Each request gets its own times (``offset``): records' ids derive from their content, so
    the same body sent twice is stored once (as a retried export should be)."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.logs.v1 import logs_pb2

    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    for key, value in (("service.version", "1.0.0"), ("deployment.environment.name", "bench")):
        resource_logs.resource.attributes.add(key=key).value.string_value = value
    scope = resource_logs.scope_logs.add()
    now = time.time_ns() + offset * count
    for i in range(count):
        record = scope.log_records.add()
        record.time_unix_nano = now + i
        record.severity_number = logs_pb2.SEVERITY_NUMBER_INFO
        record.body.string_value = f"GET /checkout answered 200 for user {i}"
        record.attributes.add(key="user_id").value.int_value = i
        record.attributes.add(key="path").value.string_value = "/checkout"
    return request.SerializeToString()


async def send_all(target: Target, path: str, headers: dict[str, str], bodies: list[bytes],
                   per_request: int, total: int, senders: int, ok: int,
                   count_rows: Callable[[], Awaitable[int]]) -> dict[str, Any]:
    pending = total // per_request
    rows_before = await count_rows()
    cpu_before = daemon_cpu()
    pool = await target.connections(senders)
    started = time.perf_counter()

    async def sender(conn: Connection) -> None:
        nonlocal pending
        while pending > 0:
            pending -= 1
            body = bodies[pending % len(bodies)]
            while True:
                status, _, answer = await conn.request("POST", path, headers, body)
                if status == ok:
                    if path == "/v1/logs" and answer:  # a partial success: something refused
                        raise SystemExit(f"/v1/logs refused records: {answer[:300]!r}")
                    break
                if status in (429, 503):
                    await asyncio.sleep(0.05)
                    continue
                raise SystemExit(f"{path} answered {status}: {answer[:300]!r}")

    await asyncio.gather(*(sender(c) for c in pool))
    accepted_at = time.perf_counter()
    for conn in pool:
        await conn.close()
    await drained(target, 0.05)
    stored_at = time.perf_counter()
    sent = (total // per_request) * per_request
    cpu = {name: (used - cpu_before.get(name, 0.0)) / sent * 1e6
           for name, used in daemon_cpu().items() if name in ("gateway", "ingest", "auth")}
    return {"cpu_us_per_log": cpu, "accepted": sent / (accepted_at - started),
            "stored": sent / (stored_at - started), "rows": await count_rows() - rows_before,
            "sent": sent}


def sdk_overhead(url: str, key: str, calls: int) -> list[tuple[str, str]]:
    from ledger.sdk import Ledger, LedgerHandler

    out: list[tuple[str, str]] = []
    client = Ledger(api_key=key, url=url, max_buffer=2 * (calls + 1000), release="1.0.0")
    log = logging.getLogger("bench.sdk")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(LedgerHandler(client))
    for name, call in (
        ("client.info(message, **2 attributes)",
         lambda i: client.info("GET /checkout answered 200", user_id=i, path="/checkout")),
        ("logging.info via LedgerHandler (extra: 2)",
         lambda i: log.info("GET /checkout answered 200",
                            extra={"user_id": i, "path": "/checkout"})),
    ):
        for i in range(1000):  # warm up
            call(i)
        timings = []
        perf = time.perf_counter_ns
        for i in range(calls):
            started = perf()
            call(i)
            timings.append(perf() - started)
        micro = [t / 1000 for t in timings]
        out.append((f"SDK {name}",
                    f"p50 {percentile(micro, 50):.2f} µs, p99 {percentile(micro, 99):.2f} µs"
                    f" ({calls} calls, {load()})"))
    delivered = client.close(60)
    out.append(("SDK delivery", f"sent {client.sent}, dropped {client.dropped},"
                                f" rejected {client.rejected}, all delivered: {delivered}"))
    return out


async def run(args: argparse.Namespace, url: str, key: str,
              count_rows: Callable[[], Awaitable[int]]) -> None:
    target = Target.from_url(url, key)
    native = [orjson.dumps({"logs": [one_log(i) for i in range(1000)]})]
    rows: list[tuple[str, str]] = []
    ratios = []
    # Both routes once before the rounds: the first request of a key looks it up in auth and
    # the first batch opens connections and partitions, which made round 1's native figure a
    # cold one (its auth CPU 5-6 µs per log, then 0) and its ratio 1.21-1.48 x.
    warm_up = [otlp_body(1000, -1 - n) for n in range(2)]
    await send_all(target, "/api/v1/ingest/batch", target.headers, native, 1000, 2000,
                   args.senders, 202, count_rows)
    await send_all(target, "/v1/logs", {"X-API-Key": key,
                                        "Content-Type": "application/x-protobuf"},
                   warm_up, 1000, 2000, args.senders, 200, count_rows)
    for round_no in range(args.rounds):
        # New records every round: a body sent again would be recognised and stored once.
        per_round = args.logs // 1000
        protobuf = [otlp_body(1000, round_no * per_round + n) for n in range(per_round)]
        figures = {}
        routes = [
            ("native batch", "/api/v1/ingest/batch", target.headers, native, 202),
            ("OTLP protobuf", "/v1/logs",
             {"X-API-Key": key, "Content-Type": "application/x-protobuf"}, protobuf, 200),
        ]
        if round_no % 2:  # alternate which goes first, so that drift in load evens out
            routes.reverse()
        for name, path, headers, body, ok in routes:
            result = await send_all(target, path, headers, body, 1000, args.logs,
                                    args.senders, ok, count_rows)
            if result["rows"] != result["sent"]:
                raise SystemExit(f"{name}: sent {result['sent']}, stored {result['rows']}")
            figures[name] = result
            rows.append((f"round {round_no + 1} {name}",
                         f"accepted {result['accepted']:,.0f} logs/s, stored"
                         f" {result['stored']:,.0f} logs/s ({result['sent']:,.0f} logs,"
                         f" {load()}); CPU µs/log: " + ", ".join(
                             f"{k} {v:.1f}" for k, v in sorted(result["cpu_us_per_log"].items()))))
        ratio = figures["OTLP protobuf"]["stored"] / figures["native batch"]["stored"]
        ratios.append(ratio)
        rows.append((f"round {round_no + 1} OTLP / native (stored)", f"{ratio:.2f} x"))
    rows.append(("OTLP / native, median of rounds", f"{statistics.median(ratios):.2f} x"
                 f" (min {min(ratios):.2f}, max {max(ratios):.2f})"))
    rows.extend(sdk_overhead(url, key, args.calls))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--logs", type=int, default=30_000, help="logs per route per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--calls", type=int, default=100_000, help="timed SDK calls")
    args = parser.parse_args()

    async def self_contained() -> None:
        with tempfile.TemporaryDirectory(prefix="ledger-bench-otlp-") as tmp:
            async with own_stack(Path(tmp)) as (url, key, count_rows):
                await run(args, url, key, count_rows)

    asyncio.run(self_contained())


if __name__ == "__main__":
    main()


