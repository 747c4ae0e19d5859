"""Ingest throughput and latency through the gateway (DESIGN §9), with a bare stub for scale.

    .venv/bin/python bench/bench_ingest.py                      # own stack in a temp folder
    .venv/bin/python bench/bench_ingest.py --url http://127.0.0.1:8000 --api-key ledger_…

Measures, in one run on one machine:

1. batches of 1 000 logs from ``--senders`` connections: logs/s accepted (all 202s back) and
   logs/s stored (the project's queue drained, i.e. committed to PostgreSQL; with its own
   stack the rows are also counted);
2. single-log ``POST /ingest/single``: the most requests/s closed-loop keep-alive connections
   get, each of the ``--connections`` counts for ``--sweep-seconds`` (the best of them is the
   saturation figure), and p50/p99 latency at a fixed ``--rate`` for ``--seconds`` (open
   loop: latency counts from when a request was due, so a stall is not hidden), in
   ``--rounds`` rounds that alternate with the stub's maximum (medians, each round shown);
3. the same two for a bare FastAPI app answering 202 (uvicorn, uvloop, httptools, one worker),
   so the ratio gateway/stub is taken in the same run on the same noisy machine.

The load generator is a minimal keep-alive HTTP/1.1 client on raw asyncio streams, so that the
client spends as little of the shared CPU as possible; its own CPU share is printed.

Why a sweep of connection counts: 32 connections keep the stub's one process busy (it peaks
near 128), but not Ledger's, which has two processes and a Redis round trip between a request
and its 202: with 32 requests in flight the gateway and ingest each sat at ~55 % of a core and
the machine was 25-35 % idle (``top``, bench/RESULTS.md). Saturation is where more load stops
adding throughput, so each side gets its best count, and the 32-connection figures stay in the
table.

With ``--url`` the key needs rate limits above what is sent (`ledger projects update` /
`ledger keys create --rate-limit-minute`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from harness import (
    GENEROUS_LIMITS,
    import_tests,
    migrated_servers,
    no_client_gc,
    percentile,
    print_results,
)

STUB_PATH = "/api/v1/ingest/single"


# -- a small HTTP/1.1 client ------------------------------------------------------------------


class Connection:
    """One keep-alive connection; ``request`` sends and reads one exchange."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer, f"{host}:{port}")

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}",
                f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        answer: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            answer[name.strip().lower()] = value.strip()
        length = int(answer.get("content-length", "0"))
        content = await self.reader.readexactly(length) if length else b""
        return status, answer, content

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass
class Target:
    host: str
    port: int
    headers: dict[str, str]

    @classmethod
    def from_url(cls, url: str, api_key: str | None) -> Target:
        parts = urlsplit(url)
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["X-API-Key"] = api_key
        return cls(parts.hostname or "127.0.0.1", parts.port or 80, headers)

    async def connections(self, count: int) -> list[Connection]:
        return list(await asyncio.gather(*(Connection.open(self.host, self.port)
                                           for _ in range(count))))


def one_log(i: int = 0) -> dict[str, Any]:
    return {"timestamp": datetime.now(UTC).isoformat(), "level": "info", "log_type": "logger",
            "message": f"GET /checkout answered 200 for user {i}", "environment": "bench",
            "release": "1.0.0", "attributes": {"user_id": i, "path": "/checkout"}}


# -- measurements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Peak:
    """One closed-loop phase: requests/s answered 2xx, non-2xx answers, the client's CPU."""

    connections: int
    rate: float
    errors: int
    client_cpu: float  # the load generator's CPU seconds per second (1.0 = a whole core)
    refusals: Counter[str]  # the non-2xx answers, by status and the start of the body


async def sweep(target: Target, path: str, body: bytes, levels: list[int],
                seconds: float) -> list[Peak]:
    """A closed-loop phase of ``seconds`` at each connection count of ``levels``."""
    peaks = []
    for connections in levels:
        cpu = time.process_time()
        started = time.perf_counter()
        refusals: Counter[str] = Counter()
        rate, errors = await max_throughput(target, path, body, connections, seconds,
                                            refusals)
        share = (time.process_time() - cpu) / (time.perf_counter() - started)
        peaks.append(Peak(connections, rate, errors, share, refusals))
    return peaks


def best(peaks: list[Peak]) -> Peak:
    return max(peaks, key=lambda peak: peak.rate)


async def max_throughput(target: Target, path: str, body: bytes, connections: int,
                         seconds: float, refusals: Counter[str] | None = None,
                         ) -> tuple[float, int]:
    """(requests/s answered 2xx, non-2xx count) with ``connections`` closed-loop workers;
    ``refusals`` counts the non-2xx answers by status and the start of their body."""
    pool = await target.connections(connections)
    done = errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        nonlocal done, errors
        while time.perf_counter() < stop_at:
            status, _, answer = await conn.request("POST", path, target.headers, body)
            if 200 <= status < 300:
                done += 1
            else:
                errors += 1
                if refusals is not None:
                    refusals[f"{status} {answer[:100].decode(errors='replace')}"] += 1

    started = time.perf_counter()
    with no_client_gc():
        await asyncio.gather(*(worker(c) for c in pool))
    elapsed = time.perf_counter() - started
    for conn in pool:
        await conn.close()
    return done / elapsed, errors


async def fixed_rate(target: Target, path: str, body: bytes, rate: float, seconds: float,
                     connections: int) -> tuple[list[float], int, float]:
    """(latencies in ms from when each request was due, non-2xx count, achieved rate)."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in await target.connections(connections):
        idle.put_nowait(conn)
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05

    async def one(due: float) -> None:
        nonlocal errors
        conn = await idle.get()
        try:
            status, _, _ = await conn.request("POST", path, target.headers, body)
        finally:
            idle.put_nowait(conn)
        latencies.append((time.perf_counter() - due) * 1000)
        if not 200 <= status < 300:
            errors += 1

    # Only the requests still running are kept for the final wait: one gather over all of
    # them made the last requests due 10-11 ms late in the client (bench/RESULTS.md). A
    # request that failed meanwhile (a dropped connection) still fails the phase.
    running: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    def finished(task: asyncio.Task[None]) -> None:
        running.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            failures.append(error)

    with no_client_gc():
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(due))
            running.add(task)
            task.add_done_callback(finished)
        await asyncio.gather(*running, return_exceptions=True)
    if failures:
        raise failures[0]
    elapsed = time.perf_counter() - start
    while not idle.empty():
        await idle.get_nowait().close()
    return latencies, errors, total / elapsed


async def queue_depth(target: Target) -> int:
    conn = await Connection.open(target.host, target.port)
    try:
        status, _, body = await conn.request("GET", "/api/v1/queue/depth", target.headers)
    finally:
        await conn.close()
    if status != 200:
        raise SystemExit(f"GET /api/v1/queue/depth answered {status}: {body[:200]!r}"
                         " (the key needs the read scope)")
    return int(orjson.loads(body)["queue_depth"])


async def drained(target: Target, poll_seconds: float) -> None:
    """Return once the project's queue is empty (everything accepted is in PostgreSQL)."""
    while await queue_depth(target) > 0:  # noqa: ASYNC110 (the state is remote)
        await asyncio.sleep(poll_seconds)


async def batches(target: Target, total_logs: int, batch_size: int, senders: int,
                  count_rows: Callable[[], Awaitable[int]] | None,
                  make_log: Callable[[int], dict[str, Any]] = one_log) -> dict[str, float]:
    """Send ``total_logs`` in batches; time until all accepted and until all stored.

    Every batch is the same body: ``make_log(i)`` for ``i`` below ``batch_size`` (ingest gives
    each log a new id, so none is a duplicate).
    """
    body = orjson.dumps({"logs": [make_log(i) for i in range(batch_size)]})
    pending = total_logs // batch_size
    refused = 0
    rows_before = await count_rows() if count_rows else 0
    pool = await target.connections(senders)
    started = time.perf_counter()

    async def sender(conn: Connection) -> None:
        nonlocal pending, refused
        while pending > 0:
            pending -= 1
            while True:
                status, _, answer = await conn.request("POST", "/api/v1/ingest/batch",
                                                       target.headers, body)
                if status == 202:
                    break
                if status in (429, 503):  # backpressure: the queue or the quota is full
                    refused += 1
                    await asyncio.sleep(0.05)
                    continue
                raise SystemExit(f"batch answered {status}: {answer[:300]!r}")

    await asyncio.gather(*(sender(c) for c in pool))
    accepted_at = time.perf_counter()
    for conn in pool:
        await conn.close()
    sent = (total_logs // batch_size) * batch_size
    await drained(target, 0.05)
    stored_at = time.perf_counter()
    result = {"logs": sent, "accepted_per_s": sent / (accepted_at - started),
              "stored_per_s": sent / (stored_at - started), "refused": refused}
    if count_rows:
        result["rows"] = await count_rows() - rows_before
    return result


# -- the stub and the self-contained stack ----------------------------------------------------


def serve_stub(port: int) -> None:
    """The reference: FastAPI answering 202 to any JSON POST, nothing else."""
    import uvicorn

    app = FastAPI()

    @app.post(STUB_PATH, status_code=202)
    async def stub(request: Request) -> Response:
        await request.body()
        return Response(b'{"accepted":1,"rejected":0,"message":"ok"}', status_code=202,
                        media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")


@contextlib.contextmanager
def stub_process() -> Any:
    from harness import wait_for_port

    from ledger.embedded import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve-stub", str(port)])
    try:
        wait_for_port(port, proc, "the stub server")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


@contextlib.asynccontextmanager
async def own_stack(workdir: Path) -> AsyncIterator[tuple[str, str, Any]]:
    """Embedded PostgreSQL + Redis, migrations, a project with generous limits, 3 daemons."""
    from ledger.core.bootstrap import ensure_default_setup

    import_tests()
    from tests.stack import Stack

    with migrated_servers(workdir, **GENEROUS_LIMITS) as settings:
        setup = await ensure_default_setup(settings)
        assert setup.full_key is not None

        with Stack(settings, workdir / "stack") as stack:
            stack.start("auth", "ingest", "gateway")
            yield stack.url, setup.full_key, row_counter(str(settings.logs_database_url))


def row_counter(url: str) -> Callable[[], Awaitable[int]]:
    """A coroutine function that counts the rows of ``logs`` in the database at ``url``."""
    import psycopg

    async def count_rows() -> int:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cur = await conn.execute("SELECT count(*) FROM logs")
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    return count_rows


#: A benchmark's body: (gateway url, key, count of stored rows or None, own stack's folder).
StackRun = Callable[[str, str, Callable[[], Awaitable[int]] | None, Path | None],
                    Coroutine[Any, Any, None]]


def run_on_stack(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 run: StackRun) -> None:
    """``run`` against ``--url`` (with ``--api-key``), or against a stack of its own."""
    import uvloop

    if args.url:
        if not args.api_key:
            parser.error("--url needs --api-key")
        uvloop.run(run(args.url, args.api_key, None, None))
        return

    async def self_contained() -> None:
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
            async with own_stack(Path(tmp)) as (url, key, count_rows):
                await run(url, key, count_rows, Path(tmp))

    uvloop.run(self_contained())


# -- main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, url: str, key: str,
              count_rows: Callable[[], Awaitable[int]] | None) -> None:
    gateway = Target.from_url(url, key)
    single = orjson.dumps(one_log())
    rows: list[tuple[str, str]] = []
    path = "/api/v1/ingest/single"
    levels: list[int] = args.connections
    stub_sweeps: list[list[Peak]] = []
    gw_sweeps: list[list[Peak]] = []
    gw_p99s: list[float] = []
    lat_errors = 0
    with stub_process() as stub_url:
        stub = Target.from_url(stub_url, None)
        stub_lat, _, stub_rate = await fixed_rate(stub, STUB_PATH, single, args.rate,
                                                  args.seconds, levels[0])
        # Rounds alternate stub -> Ledger, so that a swing of the shared machine hits both;
        # each Ledger phase ends with the queue drained, so that no writer backlog takes CPU
        # from the next stub round (which would flatter the ratio).
        for _ in range(args.rounds):
            stub_sweeps.append(await sweep(stub, STUB_PATH, single, levels,
                                           args.sweep_seconds))
            gw_sweeps.append(await sweep(gateway, path, single, levels, args.sweep_seconds))
            await drained(gateway, 0.1)
            gw_lat, errors, gw_rate = await fixed_rate(gateway, path, single, args.rate,
                                                       args.seconds, levels[0])
            gw_p99s.append(percentile(gw_lat, 99))
            lat_errors += errors
            await drained(gateway, 0.1)  # also lets the writers catch up before the batches
    batch = await batches(gateway, args.logs, args.batch_size, args.senders, count_rows)

    rows.append((f"batch {args.batch_size}: accepted",
                 f"{batch['accepted_per_s']:,.0f} logs/s ({batch['logs']:,.0f} logs,"
                 f" {args.senders} senders, {batch['refused']:.0f} refused+retried)"))
    stored = f"{batch['stored_per_s']:,.0f} logs/s"
    if "rows" in batch:
        stored += f" (rows added: {batch['rows']:,.0f})"
    rows.append((f"batch {args.batch_size}: stored", stored))
    stub_bests = [best(peaks) for peaks in stub_sweeps]
    gw_bests = [best(peaks) for peaks in gw_sweeps]
    ratios = [gw.rate / st.rate for gw, st in zip(gw_bests, stub_bests, strict=True)]
    at_first = [gw[0].rate / st[0].rate for gw, st in zip(gw_sweeps, stub_sweeps, strict=True)]
    gw_errors = sum(peak.errors for peaks in gw_sweeps for peak in peaks)
    refused = sum((peak.refusals for peaks in gw_sweeps for peak in peaks), Counter[str]())
    if refused:
        rows.append(("single: refusals in the max phases",
                     "; ".join(f"{n} x {text}" for text, n in refused.most_common(3))))
    rows.append(("stub 202: max", _peaks_row(stub_bests)))
    rows.append(("single: max", f"{_peaks_row(gw_bests)}; {gw_errors} non-2xx"))
    rows.append(("single / stub", f"{statistics.median(ratios):.2f} x median of {len(ratios)}"
                                  f" rounds ({min(ratios):.2f}-{max(ratios):.2f}), each side"
                                  " at its best connection count"))
    rows.append((f"single / stub at {levels[0]} connections",
                 f"{statistics.median(at_first):.2f} x median"
                 f" ({min(at_first):.2f}-{max(at_first):.2f})"))
    for name, sweeps in (("stub 202", stub_sweeps), ("single", gw_sweeps)):
        rows.append((f"{name} by connections (median req/s)", ", ".join(
            f"{level}: {statistics.median(peaks[i].rate for peaks in sweeps):,.0f}"
            for i, level in enumerate(levels))))
    client = max(peak.client_cpu for peaks in gw_sweeps for peak in peaks)
    rows.append(("load generator's CPU (single, max phases)",
                 f"at most {client:.0%} of a core"))
    rows.append((f"stub 202 @ {args.rate:.0f}/s",
                 f"p50 {percentile(stub_lat, 50):.2f} ms, p99 {percentile(stub_lat, 99):.2f} ms"
                 f" (achieved {stub_rate:,.0f}/s)"))
    rows.append((f"single @ {args.rate:.0f}/s",
                 f"p99 {statistics.median(gw_p99s):.2f} ms median (rounds:"
                 f" {', '.join(f'{p:.2f}' for p in gw_p99s)} ms); last round p50"
                 f" {percentile(gw_lat, 50):.2f} ms, max {max(gw_lat):.1f} ms, achieved"
                 f" {gw_rate:,.0f}/s; {lat_errors} non-2xx in all"))
    rows.append(("machine load (1/5/15 min)",
                 " / ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"))
    print_results(rows)


def _each(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


def _peaks_row(bests: list[Peak]) -> str:
    return (f"{statistics.median(peak.rate for peak in bests):,.0f} req/s median of the"
            f" rounds' bests (rounds: {_each([peak.rate for peak in bests])}; at"
            f" {', '.join(str(peak.connections) for peak in bests)} connections)")


def levels_arg(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of connection counts: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("connection counts must be 1 or more")
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="gateway of a running stack (default: start one)")
    parser.add_argument("--api-key", help="key with ingest and read scopes (with --url)")
    parser.add_argument("--logs", type=int, default=200_000, help="logs sent in batches")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=4, help="concurrent batch senders")
    parser.add_argument("--connections", type=levels_arg, default=[32, 128, 512],
                        help="keep-alive connection counts of the single-log maximum, comma"
                             " separated (the first also serves the fixed-rate phase)")
    parser.add_argument("--sweep-seconds", type=float, default=3.0,
                        help="length of the single-log maximum at each connection count")
    parser.add_argument("--rate", type=float, default=1000.0, help="single-log requests/s")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each single-log phase")
    parser.add_argument("--rounds", type=int, default=3,
                        help="single-log rounds (stub max, Ledger max, Ledger at --rate)")
    parser.add_argument("--serve-stub", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stub:
        serve_stub(args.serve_stub)
        return
    run_on_stack(parser, args, lambda url, key, count_rows, _: run(args, url, key, count_rows))


if __name__ == "__main__":
    main()
