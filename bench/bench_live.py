"""Live notifications (DESIGN §7, §9): ingest → SSE client latency, and clients per gateway.

    .venv/bin/python bench/bench_live.py                     # own stack in a temp folder
    .venv/bin/python bench/bench_live.py --clients 100,500,1000,2000 --errors 1000

Measures, in one run on one machine (every process shares its 2 cores):

1. ``--errors`` errors sent one by one to ``POST /api/v1/ingest/single`` while one client
   follows ``GET /api/v1/notifications/stream``: latency from the moment the request is
   written to the moment the client reads the event (p50/p99/max), and from the 202 answer;
2. the same with the error published straight into Redis exactly as ingest does (XADD +
   PUBLISH in one script): the gateway's own share, hub + SSE, for comparison;
3. for each count in ``--clients``: that many concurrent SSE clients, ``--burst-errors`` errors
   at ``--burst-rate``/s, latency over every (client, event) pair. The answer to "how many
   clients does one gateway hold with p99 under 30 ms" is the largest count that passes.
   Per event it also prints when the first client had it and the span from the first client
   to the last: the fan-out's own time. With 1 000 clients the p99 over pairs is about the
   latency of the worst event or two, so one hiccup of ingest or Redis (see the 1-client rows)
   sets it; the span shows what the gateway's fan-out adds to that.

The clients are raw asyncio sockets that only look for the marker in each chunk, so that the
measuring process takes as little of the shared CPU as it can; it still shares the machine
with the gateway, so figures at high counts include the client's own delays. With its own
stack the bench also prints, per client count, the gateway's CPU time per delivered event (a
figure that the machine's load hardly moves, unlike latency), the CPU the bench process itself
took meanwhile (if it nears a core, the client is the limit), and the gateway's resident memory
per connected client. ``--profile FILE`` records a py-spy profile (raw collapsed stacks) of the
gateway during the burst to the largest client count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from harness import GENEROUS_LIMITS, import_tests, migrated_servers, percentile

STREAM = "/api/v1/notifications/stream"
MARKER = re.compile(rb"bench-(\d+)-(\d+)")
TARGET_P99_MS = 30.0


@dataclass
class Received:
    """When each client read each marked event: ``at[(run, n)]`` = list of perf_counter()."""

    at: dict[tuple[int, int], list[float]] = field(default_factory=dict)


class SseClient(asyncio.Protocol):
    """A raw SSE client that timestamps every marked event as its bytes arrive.

    A bare ``asyncio.Protocol``: no task, no stream reader, only ``data_received``.
    """

    def __init__(self, host: str, port: int, key: str, received: Received) -> None:
        self.host, self.port, self.key = host, port, key
        self.received = received
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.BaseTransport | None = None
        self._pending = b""
        self._head_done = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, self.host, self.port)
        await asyncio.wait_for(self.connected, 30)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = transport
        transport.write(  # type: ignore[attr-defined]
            f"GET {STREAM} HTTP/1.1\r\nHost: {self.host}\r\nX-API-Key: {self.key}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        data = self._pending + data
        complete, _, self._pending = data.rpartition(b"\n\n")  # whole events only
        if not self._head_done:
            if b" 200 " not in data.split(b"\r\n", 1)[0]:
                self.connected.set_exception(RuntimeError(f"stream refused: {data[:200]!r}"))
                return
            if b"event: connected" in complete:
                self._head_done = True
                self.connected.set_result(None)
            else:
                self._pending = data
                return
        for match in MARKER.finditer(complete):
            self.received.at.setdefault((int(match[1]), int(match[2])), []).append(now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(RuntimeError(f"connection lost: {exc}"))

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Sender:
    """One keep-alive connection posting single errors."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str, key: str) -> None:
        self.reader, self.writer, self.host, self.key = reader, writer, host, key

    @classmethod
    async def open(cls, host: str, port: int, key: str) -> Sender:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host, key)

    async def send(self, run: int, n: int) -> None:
        body = orjson.dumps({
            "timestamp": datetime.now(UTC).isoformat(), "level": "error",
            "log_type": "exception", "error_type": "BenchError",
            "error_message": "measured", "message": f"bench-{run}-{n}"})
        self.writer.write(
            f"POST /api/v1/ingest/single HTTP/1.1\r\nHost: {self.host}\r\n"
            f"X-API-Key: {self.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
        await self.reader.readexactly(length)
        if b" 202 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"ingest refused: {head[:200]!r}")

    async def close(self) -> None:
        self.writer.close()


class GatewayProcess:
    """The gateway's CPU time and resident memory, read from /proc (own stack only)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc/<gateway>/status")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_profile(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(py_spy), "record", "-p", str(pid), "-d", str(int(seconds)),
                             "-r", "100", "-f", "raw", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summary(latencies_ms: list[float]) -> str:
    return (f"p50 {percentile(latencies_ms, 50):6.2f} ms   p99 {percentile(latencies_ms, 99):6.2f}"
            f" ms   max {max(latencies_ms):6.2f} ms   n={len(latencies_ms)}")


async def wait_for(received: Received, keys: list[tuple[int, int]], clients: int,
                   timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(len(received.at.get(k, ())) < clients for k in keys):
        if time.monotonic() > deadline:
            missing = sum(1 for k in keys if len(received.at.get(k, ())) < clients)
            raise RuntimeError(f"{missing} events did not reach every client in {timeout}s")
        await asyncio.sleep(0.05)


async def ingest_latency(host: str, port: int, key: str, count: int,
                         gap: float) -> tuple[list[float], list[float]]:
    received = Received()
    client = SseClient(host, port, key, received)
    await client.start()
    sender = await Sender.open(host, port, key)
    sent: dict[int, tuple[float, float]] = {}
    try:
        for n in range(count):
            start = time.perf_counter()
            await sender.send(1, n)
            sent[n] = (start, time.perf_counter())
            await asyncio.sleep(gap)
        await wait_for(received, [(1, n) for n in range(count)], 1)
    finally:
        await sender.close()
        await client.close()
    from_send = [(received.at[(1, n)][0] - sent[n][0]) * 1000 for n in range(count)]
    from_ack = [(received.at[(1, n)][0] - sent[n][1]) * 1000 for n in range(count)]
    return from_send, from_ack


async def publish_latency(host: str, port: int, key: str, redis_url: str, project_id: str,
                          count: int, gap: float) -> list[float]:
    from ledger import bus
    from ledger.queue import names

    script = """
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', 1000, '*', 'data', ARGV[1])
    redis.call('PUBLISH', ARGV[2], '{"event_id":"' .. id .. '","data":' .. ARGV[1] .. '}')
    return id
    """
    redis = bus.client(redis_url)
    notify = redis.register_script(script)
    received = Received()
    client = SseClient(host, port, key, received)
    await client.start()
    sent: dict[int, float] = {}
    try:
        for n in range(count):
            data = orjson.dumps({"id": str(n), "project_id": project_id, "level": "error",
                                 "log_type": "exception", "message": f"bench-2-{n}"})
            sent[n] = time.perf_counter()
            await notify(keys=[names.notifications_stream(project_id)],
                         args=[data, names.notifications_channel(project_id)])
            await asyncio.sleep(gap)
        await wait_for(received, [(2, n) for n in range(count)], 1)
    finally:
        await client.close()
        await redis.aclose()
    return [(received.at[(2, n)][0] - sent[n]) * 1000 for n in range(count)]


@dataclass
class FanOutRun:
    clients: int
    latencies_ms: list[float]
    gateway_cpu_us_per_delivery: float | None = None
    bench_cpu_share: float | None = None  # of one core, during the burst
    rss_per_client_kb: float | None = None
    #: Per event: when its first client had it (ms after the request), and how long the
    #: gateway then took to reach its last client (ms): the fan-out's own span, apart from the
    #: hiccups of ingest and Redis that delay every client of an event alike.
    first_ms: list[float] = field(default_factory=list)
    spread_ms: list[float] = field(default_factory=list)


async def fan_out(host: str, port: int, key: str, counts: list[int], errors: int,
                  rate: float, gateway: GatewayProcess | None = None,
                  profile: Path | None = None, every_count: bool = False) -> list[FanOutRun]:
    received = Received()
    clients: list[SseClient] = []
    results = []
    try:
        for run, count in enumerate(counts, start=10):
            rss_before = gateway.rss_bytes() if gateway else 0
            connected_before = len(clients)
            while len(clients) < count:
                batch = [SseClient(host, port, key, received)
                         for _ in range(min(50, count - len(clients)))]
                await asyncio.gather(*(c.start() for c in batch))
                clients.extend(batch)
            await asyncio.sleep(0.5)  # let the connection storm settle
            outcome = FanOutRun(count, [])
            if gateway and count > connected_before:
                outcome.rss_per_client_kb = ((gateway.rss_bytes() - rss_before)
                                             / (count - connected_before) / 1024)
            spy = (start_profile(gateway.pid, profile, errors / rate)
                   if gateway and profile and count == max(counts) else None)
            # A connection of its own per burst: connecting thousands of clients outlasts the
            # gateway's keep-alive, which would close one opened before.
            sender = await Sender.open(host, port, key)
            cpu_before = gateway.cpu_seconds() if gateway else 0.0
            own_before, wall_before = own_cpu_seconds(), time.perf_counter()
            sent: dict[int, float] = {}
            try:
                for n in range(errors):
                    sent[n] = time.perf_counter()
                    await sender.send(run, n)
                    await asyncio.sleep(1 / rate)
            finally:
                await sender.close()
            await wait_for(received, [(run, n) for n in range(errors)], count, timeout=120)
            outcome.bench_cpu_share = ((own_cpu_seconds() - own_before)
                                       / (time.perf_counter() - wall_before))
            if gateway:
                outcome.gateway_cpu_us_per_delivery = (
                    (gateway.cpu_seconds() - cpu_before) * 1e6 / (errors * count))
            if spy is not None:
                spy.wait()
            outcome.latencies_ms = [(t - sent[n]) * 1000 for n in range(errors)
                                    for t in received.at[(run, n)]]
            for n in range(errors):
                times = received.at[(run, n)]
                outcome.first_ms.append((min(times) - sent[n]) * 1000)
                outcome.spread_ms.append((max(times) - min(times)) * 1000)
            results.append(outcome)
            extra = f"   bench CPU {outcome.bench_cpu_share:4.0%} of a core"
            if outcome.gateway_cpu_us_per_delivery is not None:
                extra += f"   gateway CPU {outcome.gateway_cpu_us_per_delivery:5.1f} µs/delivery"
            if outcome.rss_per_client_kb is not None:
                extra += f"   RSS {outcome.rss_per_client_kb:5.1f} KiB/client"
            print(f"  {count:5d} clients  {summary(outcome.latencies_ms)}{extra}", flush=True)
            print(f"         per event: first client p50 {percentile(outcome.first_ms, 50):6.2f}"
                  f" ms p99 {percentile(outcome.first_ms, 99):6.2f} ms;   first → last client"
                  f" p50 {percentile(outcome.spread_ms, 50):6.2f} ms"
                  f" p99 {percentile(outcome.spread_ms, 99):6.2f} ms", flush=True)
            if percentile(outcome.latencies_ms, 99) > 4 * TARGET_P99_MS and not every_count:
                break  # far past the target: larger counts only take longer
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return results


@contextlib.asynccontextmanager
async def own_stack(workdir: Path,
                    max_streams: int) -> AsyncIterator[tuple[str, str, str, str, int]]:
    """Embedded PostgreSQL + Redis, migrations, a project with generous limits, 3 daemons."""
    from ledger.core.bootstrap import ensure_default_setup

    import_tests()
    from tests.stack import Stack

    with migrated_servers(workdir, **GENEROUS_LIMITS,
                          gateway_max_live_streams=max_streams) as settings:
        setup = await ensure_default_setup(settings)
        assert setup.full_key is not None
        with Stack(settings, workdir / "stack") as stack:
            stack.start("auth", "ingest", "gateway")
            yield (stack.url, setup.full_key, str(settings.redis_url), setup.project.id,
                   stack.daemons["gateway"].proc.pid)


async def run(args: argparse.Namespace, url: str, key: str, redis_url: str | None,
              project_id: str | None, gateway_pid: int | None = None) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    report: dict[str, Any] = {}
    print(f"1. ingest → SSE, {args.errors} errors one by one, one client")
    from_send, from_ack = await ingest_latency(host, port, key, args.errors, args.gap)
    print(f"   from the request   {summary(from_send)}")
    print(f"   from the 202       {summary(from_ack)}")
    report["ingest_to_client_ms"] = {"p50": percentile(from_send, 50),
                                     "p99": percentile(from_send, 99), "max": max(from_send)}
    if redis_url and project_id:
        print(f"2. Redis publish → SSE (the gateway's share), {args.errors} errors")
        published = await publish_latency(host, port, key, redis_url, project_id, args.errors,
                                          args.gap)
        print(f"   {summary(published)}")
        report["publish_to_client_ms"] = {"p50": percentile(published, 50),
                                          "p99": percentile(published, 99)}
    counts = [int(c) for c in args.clients.split(",")]
    print(f"3. concurrent clients, {args.burst_errors} errors at {args.burst_rate:.0f}/s each")
    gateway = GatewayProcess(gateway_pid) if gateway_pid else None
    fan = await fan_out(host, port, key, counts, args.burst_errors, args.burst_rate, gateway,
                        args.profile, args.every_count)
    report["fan_out"] = [{"clients": r.clients, "p50_ms": percentile(r.latencies_ms, 50),
                          "p99_ms": percentile(r.latencies_ms, 99),
                          "gateway_cpu_us_per_delivery": r.gateway_cpu_us_per_delivery,
                          "bench_cpu_share": r.bench_cpu_share,
                          "gateway_rss_per_client_kb": r.rss_per_client_kb,
                          "first_client_ms": {"p50": percentile(r.first_ms, 50),
                                              "p99": percentile(r.first_ms, 99)},
                          "first_to_last_client_ms": {"p50": percentile(r.spread_ms, 50),
                                                      "p99": percentile(r.spread_ms, 99)}}
                         for r in fan]
    passing = [r.clients for r in fan if percentile(r.latencies_ms, 99) < TARGET_P99_MS]
    report["max_clients_p99_under_30ms"] = max(passing) if passing else 0
    print(f"   most clients with p99 < {TARGET_P99_MS:.0f} ms: "
          f"{report['max_clients_p99_under_30ms']}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="gateway of a running stack (default: start one)")
    parser.add_argument("--api-key", help="key with ingest and read scopes (with --url); its"
                        " project needs high rate limits and LEDGER_GATEWAY_MAX_LIVE_STREAMS"
                        " above the largest --clients")
    parser.add_argument("--errors", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=0.002, help="seconds between errors")
    parser.add_argument("--clients", default="100,250,500,1000,1500,2000")
    parser.add_argument("--burst-errors", type=int, default=50)
    parser.add_argument("--burst-rate", type=float, default=20.0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--every-count", action="store_true", help="measure every --clients"
                        " count, even after one far past the target (comparing runs)")
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of the gateway during"
                        " the burst to the largest client count (own stack only)")
    args = parser.parse_args()
    import uvloop

    async def main_async() -> dict[str, Any]:
        if args.url:
            if not args.api_key:
                parser.error("--url needs --api-key")
            return await run(args, args.url, args.api_key, None, None)
        largest = max(int(c) for c in args.clients.split(","))
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
            async with own_stack(Path(tmp), largest + 10) as (url, key, redis_url, project,
                                                                pid):
                return await run(args, url, key, redis_url, project, pid)

    report = uvloop.run(main_async())
    report["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if args.json:
        args.json.write_text(orjson.dumps(_rounded(report), option=orjson.OPT_INDENT_2).decode()
                             + "\n")


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


if __name__ == "__main__":
    main()
