"""Single-log floor of the contract: what HTTP → gRPC → Redis costs with nothing else around it.

    .venv/bin/python bench/bench_single_floor.py [--rounds 3] [--seconds 5] [--rate 1000]

DESIGN §9 asks the single-log route for ≥ 0.5 x a FastAPI app that only answers 202. The
contract puts more on a single log's way to its 202 than that stub does: the gateway and the
ingest daemon are separate processes with gRPC between them, and a log is queued in Redis
before it is answered. This script measures the lightest program that does those three things
and nothing else, against the stub and against Ledger, in the same run:

- *floor gateway*: a bare ASGI callable on the gateway's server (uvicorn, httptools, uvloop):
  reads the body, coalesces it with the bodies waiting (one batch in flight, as Ledger's
  batcher), sends the batch as one message on one long-lived bidirectional gRPC stream (raw
  bytes, no protobuf), answers 202 when the batch's answer comes back;
- *floor ingest*: a grpc.aio server that queues each batch's bodies with one Lua script call
  (``XADD`` per body, as Ledger's ``ENQUEUE_MANY``) and answers the batch's id.

Not in the floor, and all in Ledger: the key check and its rate-limit round trip to Redis,
validation and enrichment, the error fingerprint, the notification, and the writers that drain
the queue into PostgreSQL on the same two cores. So Ledger can only be slower than the floor;
if the floor itself is below half the stub, the target is out of reach of any program that
keeps the contract on this machine.

Ledger's ingest process also runs its writers (as in one-process ``ledger up``);
``--split-writer`` runs them in a process of their own, reported apart.

Rounds alternate stub → floor → Ledger so that a swing of the machine hits all three. Each
round: the most requests/s ``--connections`` keep-alive connections get (closed loop), the CPU
each server process spent per request in it (``/proc/<pid>/stat``) and the load generator's
own CPU share; then p50/p99 at ``--rate`` req/s (open loop). Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
from bench_ingest import STUB_PATH, Target, fixed_rate, max_throughput, one_log
from bench_single_cpu import cpu_seconds
from harness import (
    GENEROUS_LIMITS,
    import_tests,
    migrated_servers,
    percentile,
    print_results,
    wait_for_port,
)

METHOD = "/floor.Floor/Stream"
QUEUE_KEY = "floor:queue"
ANSWER = b'{"accepted":1,"rejected":0,"message":"ok"}'
_ID = struct.Struct("!Q")
_LEN = struct.Struct("!I")

# KEYS: the stream.  ARGV: one body each.  One call per batch, like Ledger's ENQUEUE_MANY.
_ENQUEUE = """
for i = 1, #ARGV do redis.call('XADD', KEYS[1], '*', 'b', ARGV[i]) end
return #ARGV
"""


# -- the floor's two processes ----------------------------------------------------------------


def pack_batch(batch_id: int, bodies: list[bytes]) -> bytes:
    """One stream message: the batch's id, then each body with its length in front."""
    parts = [_ID.pack(batch_id)]
    for body in bodies:
        parts += (_LEN.pack(len(body)), body)
    return b"".join(parts)


def unpack_batch(message: bytes) -> tuple[bytes, list[bytes]]:
    """The packed id (sent back as it came) and the bodies of one stream message."""
    bodies: list[bytes] = []
    at = _ID.size
    while at < len(message):
        (size,) = _LEN.unpack_from(message, at)
        at += _LEN.size
        bodies.append(message[at:at + size])
        at += size
    return message[:_ID.size], bodies


def serve_floor_ingest(port: int, redis_url: str) -> None:
    """The floor's ingest: queue each batch in Redis with one script call, answer its id."""
    import grpc
    import redis.asyncio as aioredis
    import uvloop

    async def main() -> None:
        redis = aioredis.from_url(redis_url)
        enqueue = redis.register_script(_ENQUEUE)

        async def stream(messages: AsyncIterator[bytes], _context: Any) -> AsyncIterator[bytes]:
            async for message in messages:
                batch_id, bodies = unpack_batch(message)
                await enqueue(keys=[QUEUE_KEY], args=bodies)
                yield batch_id

        handler = grpc.method_handlers_generic_handler(
            "floor.Floor", {"Stream": grpc.stream_stream_rpc_method_handler(stream)})
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        stop = asyncio.Event()  # SIGINT, as uvicorn (the stub, the floor's gateway) stops on
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        await server.stop(1)
        await redis.aclose()

    uvloop.run(main())


class Coalescer:
    """Bodies waiting for the stream: sent together while one batch is in flight."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._waiting: list[tuple[bytes, asyncio.Future[None]]] = []
        self._in_flight: list[asyncio.Future[None]] | None = None
        self._next_id = 0

    async def submit(self, body: bytes) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((body, done))
        if self._in_flight is None:
            await self._send()
        await done

    async def _send(self) -> None:
        batch, self._waiting = self._waiting, []
        self._in_flight = [done for _, done in batch]
        self._next_id += 1
        await self._call.write(pack_batch(self._next_id, [body for body, _ in batch]))

    async def read_answers(self) -> None:
        async for _batch_id in self._call:
            answered, self._in_flight = self._in_flight or [], None
            for done in answered:
                done.set_result(None)
            if self._waiting:
                await self._send()


def serve_floor_gateway(port: int, ingest_port: int) -> None:
    """The floor's gateway: a bare ASGI app that hands each body to the stream, answers 202."""
    import grpc
    import uvicorn
    import uvloop

    coalescer: Coalescer | None = None
    head = {"type": "http.response.start", "status": 202,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", b"%d" % len(ANSWER))]}
    tail = {"type": "http.response.body", "body": ANSWER}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal coalescer
        if coalescer is None:  # made in the server's loop, on the first request
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{ingest_port}")
            coalescer = Coalescer(channel.stream_stream(METHOD)())
            asyncio.get_running_loop().create_task(coalescer.read_answers())
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await coalescer.submit(body)
        await send(head)
        await send(tail)

    async def main() -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, http="httptools",
                                lifespan="off", access_log=False, log_level="warning")
        await uvicorn.Server(config).serve()

    # uvicorn shuts down on SIGINT and then raises the signal again for its caller: that is
    # the stop asked for, not a failure.
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())


@contextlib.contextmanager
def server(args: list[str], port: int, what: str) -> Iterator[subprocess.Popen[bytes]]:
    """This script run as one of its servers, on ``port``, until the block ends."""
    proc = subprocess.Popen([sys.executable, __file__, *args])
    try:
        wait_for_port(port, proc, what)
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)  # each of the three servers stops cleanly on it
        proc.wait(10)


# -- the measurement --------------------------------------------------------------------------


async def one_target(name: str, target: Target, pids: dict[str, int], body: bytes,
                     args: argparse.Namespace) -> dict[str, float]:
    """One closed-loop phase and one open-loop phase against ``target``.

    ``pids``: the target's server processes by name; each one's CPU per request is reported
    (``cpu_us:<name>``) besides their sum (``cpu_us``).
    """
    before = {process: cpu_seconds(pid) for process, pid in pids.items()}
    client_before = time.process_time()
    started = time.perf_counter()
    rate, errors = await max_throughput(target, STUB_PATH, body, args.connections, args.seconds)
    elapsed = time.perf_counter() - started
    client_share = (time.process_time() - client_before) / elapsed
    spent = {process: cpu_seconds(pid) - before[process] for process, pid in pids.items()}
    answered = rate * elapsed
    latencies, late_errors, achieved = await fixed_rate(target, STUB_PATH, body, args.rate,
                                                        args.seconds, args.connections)
    if errors or late_errors:
        raise SystemExit(f"{name}: {errors + late_errors} non-2xx answers")
    per_process = {f"cpu_us:{process}": seconds / answered * 1e6
                   for process, seconds in spent.items()}
    return {"rate": rate, "cpu_us": sum(spent.values()) / answered * 1e6, **per_process,
            "client": client_share, "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99), "achieved": achieved}


async def measure(args: argparse.Namespace) -> None:
    from ledger.core.bootstrap import ensure_default_setup
    from ledger.embedded import free_port

    import_tests()
    from tests.stack import Stack

    load_before = os.getloadavg()
    body = orjson.dumps(one_log())
    results: dict[str, list[dict[str, float]]] = {"stub": [], "floor": [], "ledger": []}
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp, \
            migrated_servers(Path(tmp), **GENEROUS_LIMITS) as settings, \
            contextlib.ExitStack() as servers:
        setup = await ensure_default_setup(settings)
        assert setup.full_key is not None
        stack = servers.enter_context(Stack(settings, Path(tmp) / "stack"))
        ledger_processes = ["gateway", "ingest"]
        if args.split_writer:  # the writer in a process of its own, as `ledger up --processes`
            stack.settings = stack.settings.with_overrides(ingest_role="api")
            stack.add("writer", "ingest", ingest_role="writer")
            ledger_processes.append("writer")
        stack.start("auth", *ledger_processes)
        stub_port, ingest_port, gateway_port = free_port(), free_port(), free_port()
        stub = servers.enter_context(server(["--serve-stub", str(stub_port)], stub_port,
                                            "the stub"))
        floor_ingest = servers.enter_context(server(
            ["--floor-ingest", str(ingest_port), str(settings.redis_url)], ingest_port,
            "the floor's ingest"))
        floor_gateway = servers.enter_context(server(
            ["--floor-gateway", str(gateway_port), str(ingest_port)], gateway_port,
            "the floor's gateway"))
        targets = {
            "stub": (Target.from_url(f"http://127.0.0.1:{stub_port}", None),
                     {"stub": stub.pid}),
            "floor": (Target.from_url(f"http://127.0.0.1:{gateway_port}", None),
                      {"gateway": floor_gateway.pid, "ingest": floor_ingest.pid}),
            "ledger": (Target.from_url(stack.url, setup.full_key),
                       {name: stack.daemons[name].proc.pid for name in ledger_processes}),
        }
        for target, _ in targets.values():  # warm up: connections, caches, the streams
            await max_throughput(target, STUB_PATH, body, 8, 1)
        for round_ in range(1, args.rounds + 1):
            for name, (target, pids) in targets.items():
                results[name].append(await one_target(name, target, pids, body, args))
                print(f"round {round_} {name}: {results[name][-1]['rate']:,.0f} req/s",
                      file=sys.stderr)
    print_results(table(results, load_before, args))


def table(results: dict[str, list[dict[str, float]]], load_before: tuple[float, ...],
          args: argparse.Namespace) -> list[tuple[str, str]]:
    def median(name: str, key: str) -> float:
        values = sorted(run[key] for run in results[name])
        return values[len(values) // 2]

    def spread(name: str, key: str, form: str) -> str:
        return ", ".join(format(run[key], form) for run in results[name])

    rows = [("load before (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load_before))]
    for name, label in (("stub", "FastAPI 202 stub"), ("floor", "floor (HTTP → gRPC → Redis)"),
                        ("ledger", "Ledger /ingest/single")):
        rows.append((f"{label}: max req/s", f"median {median(name, 'rate'):,.0f}"
                                            f" ({spread(name, 'rate', ',.0f')})"))
        rows.append((f"{label}: server CPU per request", f"{spread(name, 'cpu_us', ',.0f')} µs"))
        processes = sorted(k for k in results[name][0] if k.startswith("cpu_us:"))
        for key in processes if len(processes) > 1 else []:
            rows.append((f"{label}: {key.removeprefix('cpu_us:')} CPU per request",
                         f"{spread(name, key, ',.0f')} µs"))
        rows.append((f"{label}: load generator CPU share", spread(name, "client", ".0%")))
        rows.append((f"{label}: @ {args.rate:.0f}/s p50 / p99",
                     ", ".join(f"{run['p50']:.2f} / {run['p99']:.2f} ms"
                               for run in results[name])))
    for round_ in range(len(results["stub"])):
        stub, floor, ledger = (results[name][round_]["rate"] for name in ("stub", "floor",
                                                                          "ledger"))
        rows.append((f"round {round_ + 1}: floor / stub, Ledger / stub, Ledger / floor",
                     f"{floor / stub:.2f} x, {ledger / stub:.2f} x, {ledger / floor:.2f} x"))
    rows.append(("load after (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--split-writer", action="store_true",
                        help="run Ledger's writer apart from its ingest API process, so that"
                             " the accept side's CPU and the writer's are reported apart")
    parser.add_argument("--serve-stub", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--floor-ingest", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--floor-gateway", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stub:
        from bench_ingest import serve_stub

        serve_stub(args.serve_stub)
    elif args.floor_ingest:
        serve_floor_ingest(int(args.floor_ingest[0]), args.floor_ingest[1])
    elif args.floor_gateway:
        serve_floor_gateway(*args.floor_gateway)
    else:
        import uvloop

        uvloop.run(measure(args))


if __name__ == "__main__":
    main()
