"""Sentry events through ``POST /api/<number>/envelope/``: events/s stored, accept latency.

    .venv/bin/python bench/bench_sentry.py                      # own stack in a temp folder
    .venv/bin/python bench/bench_sentry.py --url http://127.0.0.1:8000 --api-key ledger_…

Each event is what a Python SDK sends for a handled exception: about 5 KB of JSON with a
chained exception and 30 frames with context lines, tags, user, a few breadcrumbs, one event
per envelope (as SDKs send them), each with its own event id. Measured in one run:

1. throughput: ``--events`` envelopes from each of the ``--connections`` counts of keep-alive
   connections in turn, as fast as they are answered; events/s accepted (all 200s back) and
   events/s stored (the project's queue drained, i.e. committed to PostgreSQL; with its own
   stack the rows are counted too). The best count is the figure, as in ``bench_ingest.py``:
   32 connections leave Ledger's two processes half idle (1 246 events/s stored at 32, 1 700
   at 128, 2 076 at 512 on 2026-12-03), so the most a client can get needs more in flight;
   the same events as native single logs are then sent at that count, for the ratio;
2. accept latency at a fixed ``--rate`` for ``--seconds`` (open loop: counted from when the
   request was due), p50/p99.

Before them, what the Sentry layer itself costs per event in this process (``layer_cost``:
parse, conversion, forwarded body), the part of a request that is not the shared ingest path.

The load generator and the self-contained stack are those of ``bench_ingest.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from bench_ingest import Connection, Target, drained, fixed_rate, levels_arg, run_on_stack
from harness import percentile, print_results

from ledger.core import sentry

FRAMES = 30


def sentry_event(i: int) -> dict[str, Any]:
    """A realistic Python SDK error event of about 5 KB with ``FRAMES`` frames."""
    frames = [{
        "filename": f"shop/m{j}.py", "abs_path": f"/app/shop/m{j}.py",
        "module": f"shop.m{j}", "function": f"step_{j}", "lineno": 100 + j,
        "in_app": j > 5, "context_line": f"    r = s{j}(o)",
    } for j in range(FRAMES)]
    return {
        "event_id": uuid.uuid4().hex, "timestamp": time.time(), "platform": "python",
        "level": "error", "release": "shop@4.2.0", "environment": "production",
        "server_name": f"web-{i % 8}", "transaction": "/checkout",
        "exception": {"values": [
            {"type": "KeyError", "value": "'price'", "module": "builtins",
             "stacktrace": {"frames": frames[-1:]}},
            {"type": "PricingError", "value": f"no price for sku-{i % 50}",
             "module": "shop.pricing", "stacktrace": {"frames": frames}},
        ]},
        "tags": {"region": "eu-west", "customer_tier": "gold"},
        "user": {"id": str(i % 1000), "email": f"user{i % 1000}@example.com"},
        "breadcrumbs": {"values": [
            {"timestamp": time.time(), "category": "http", "message": f"GET /cart/{k}"}
            for k in range(3)]},
        "sdk": {"name": "sentry.python", "version": "2.75.0"},
    }


def envelope(event: dict[str, Any]) -> bytes:
    payload = orjson.dumps(event)
    return b"\n".join([orjson.dumps({"event_id": event["event_id"]}),
                       orjson.dumps({"type": "event", "length": len(payload)}), payload, b""])


def layer_cost(bodies: list[bytes], rounds: int = 5) -> dict[str, float]:
    """Seconds per event of the gateway's Sentry work, in this process, best of ``rounds``.

    The steps ``routes/sentry.py`` takes for each envelope, without HTTP, auth or ingest:
    ``parse`` (envelope and event JSON), ``convert`` (event id and ``event_to_record``) and
    ``body`` (the JSON body forwarded to ingest). What the Sentry layer adds to a request,
    apart from the shared path, and steadier than the stack's figures on a loaded machine.
    """
    sample = bodies[:500]
    best = {"parse": float("inf"), "convert": float("inf"), "body": float("inf")}
    now = datetime.now(UTC)
    for _ in range(rounds):
        started = time.perf_counter()
        events = [sentry.parse_event(sentry.parse_envelope(body).items[0].payload, "item 0")
                  for body in sample]
        parsed = time.perf_counter()
        records = [sentry.event_to_record(event, event_id=sentry.event_id_of(event),
                                          received_at=now) for event in events]
        converted = time.perf_counter()
        for record in records:
            orjson.dumps({"logs": [record]})
        done = time.perf_counter()
        for step, seconds in (("parse", parsed - started), ("convert", converted - parsed),
                              ("body", done - converted)):
            best[step] = min(best[step], seconds / len(sample))
    return best


def _kind(cmdline: bytes) -> str:
    words = cmdline.split(b"\0")
    if b"serve" in words and words.index(b"serve") + 1 < len(words):
        return words[words.index(b"serve") + 1].decode()
    name = Path(words[0].decode(errors="replace")).name if words else "?"
    return "postgres" if name.startswith("postgres") else name.split(":")[0] or "?"


def stack_cpu_seconds(workdir: Path | None) -> dict[str, float] | None:
    """CPU seconds used so far by the stack this bench started (not by the load generator),
    by kind of process (``gateway``, ``ingest``, ``auth``, ``postgres``, ``redis-server``).

    The stack is every descendant of this process plus every process whose command line names
    ``workdir`` (the embedded PostgreSQL's postmaster detaches) and their descendants. On a
    shared machine CPU time per event is a steadier figure than events per second.
    """
    if workdir is None:
        return None
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    kinds: dict[int, str] = {}
    roots = {os.getpid()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])
        kinds[pid] = _kind(cmdline)
        if str(workdir).encode() in cmdline:
            roots.add(pid)
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, ()))
    seen.discard(os.getpid())
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for pid in seen:
        out[kinds[pid]] = out.get(kinds[pid], 0.0) + ticks[pid] / tick
    return out


async def settings_of(target: Target) -> dict[str, Any]:
    conn = await Connection.open(target.host, target.port)
    try:
        status, _, body = await conn.request("GET", "/api/v1/settings", target.headers)
    finally:
        await conn.close()
    if status != 200:
        raise SystemExit(f"GET /api/v1/settings answered {status}: {body[:200]!r}")
    return dict(orjson.loads(body))


async def throughput(target: Target, path: str, bodies: list[bytes], connections: int,
                     count_rows: Callable[[], Awaitable[int]] | None,
                     ok: int = 200) -> dict[str, float]:
    rows_before = await count_rows() if count_rows else 0
    pool = await target.connections(connections)
    pending = list(reversed(bodies))
    refused = 0
    started = time.perf_counter()

    async def sender(conn: Connection) -> None:
        nonlocal refused
        while pending:
            body = pending.pop()
            while True:
                status, _, answer = await conn.request("POST", path, target.headers, body)
                if status == ok:
                    break
                if status in (429, 503):
                    refused += 1
                    continue
                raise SystemExit(f"envelope answered {status}: {answer[:300]!r}")

    await asyncio.gather(*(sender(c) for c in pool))
    accepted_at = time.perf_counter()
    for conn in pool:
        await conn.close()
    await drained(target, 0.05)
    stored_at = time.perf_counter()
    result = {"events": len(bodies), "accepted_per_s": len(bodies) / (accepted_at - started),
              "stored_per_s": len(bodies) / (stored_at - started), "refused": refused}
    if count_rows:
        result["rows"] = await count_rows() - rows_before
    return result


async def run(args: argparse.Namespace, url: str, key: str,
              count_rows: Callable[[], Awaitable[int]] | None,
              workdir: Path | None = None) -> None:
    target = Target.from_url(url, key)
    target.headers = {"Content-Type": "application/x-sentry-envelope",
                      "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}",
                      "X-API-Key": key}  # X-API-Key for /queue/depth
    number = (await settings_of(target))["project_dsn_id"]
    path = f"/api/{number}/envelope/"
    sample = sentry_event(0)
    event_bytes = len(orjson.dumps(sample))
    levels: list[int] = args.connections
    # The Sentry layer's own cost per event: 2 000 events are plenty for a best of five.
    layer = layer_cost([envelope(sentry_event(i)) for i in range(min(args.events, 2000))])
    load_before = os.getloadavg()
    # Each count sends events of its own (fresh ids): every phase stores new rows.
    swept: list[tuple[int, dict[str, float], Any, Any]] = []
    for connections in levels:
        bodies = [envelope(sentry_event(i)) for i in range(args.events)]
        cpu_before = stack_cpu_seconds(workdir)
        outcome = await throughput(target, path, bodies, connections, count_rows)
        swept.append((connections, outcome, cpu_before, stack_cpu_seconds(workdir)))
    connections, result, cpu_before, cpu_after = max(
        swept, key=lambda phase: phase[1]["stored_per_s"])
    # The same events as native logs, one per request: what the Sentry path costs on top.
    native = [orjson.dumps(sentry.event_to_record(event, event_id=uuid.uuid4().hex))
              for event in (sentry_event(i) for i in range(args.events))]
    native_before = stack_cpu_seconds(workdir)
    reference = await throughput(Target.from_url(url, key), "/api/v1/ingest/single", native,
                                 connections, count_rows, ok=202)
    native_after = stack_cpu_seconds(workdir)
    # Latency at a fixed rate: the same body re-sent is stored once (same event id, same
    # timestamp), so this phase measures the accept path without growing the table.
    latencies, errors, achieved = await fixed_rate(target, path, envelope(sample), args.rate,
                                                   args.seconds, levels[0])
    cpu_rows: list[tuple[str, str]] = []
    cpus = os.cpu_count() or 1
    for label, before, after in (("", cpu_before, cpu_after),
                                 ("native single: ", native_before, native_after)):
        if before is None or after is None:
            continue
        used = {kind: after[kind] - before.get(kind, 0.0) for kind in after}
        per_event = sum(used.values()) / args.events
        cpu_rows.append((f"{label}stack CPU per event",
                         f"{per_event * 1e6:,.0f} µs = {cpus / per_event:,.0f} events/s if the"
                         f" stack had all {cpus} CPUs to itself"))
        cpu_rows.append(("  of which", ", ".join(
            f"{kind} {seconds / args.events * 1e6:,.0f} µs"
            for kind, seconds in sorted(used.items(), key=lambda kv: -kv[1]) if seconds > 0)))
    rows = [
        ("event size", f"{event_bytes:,} bytes JSON, {FRAMES} frames, chained exception"),
        ("accepted", f"{result['accepted_per_s']:,.0f} events/s ({result['events']:,.0f}"
                     f" envelopes, {connections} connections,"
                     f" {result['refused']:.0f} refused+retried)"),
        ("stored", f"{result['stored_per_s']:,.0f} events/s"
                   + (f" (rows added: {result['rows']:,.0f})" if "rows" in result else "")
                   + f", the best of {len(levels)} connection counts"),
        ("stored by connections", ", ".join(
            f"{count}: {outcome['stored_per_s']:,.0f}/s"
            + (f" ({outcome['rows']:,.0f} rows)" if "rows" in outcome else "")
            for count, outcome, _, _ in swept)),
        *cpu_rows,
        ("Sentry layer, in process", " + ".join(
            f"{step} {seconds * 1e6:,.0f} µs" for step, seconds in layer.items())
         + f" = {sum(layer.values()) * 1e6:,.0f} µs per event (best of 5, one core)"),
        ("same events, native single", f"{reference['stored_per_s']:,.0f} logs/s stored at"
                                       f" {connections} connections ="
                                       f" Sentry path at"
                                       f" {result['stored_per_s'] / reference['stored_per_s']:.2f}"
                                       " x native"),
        (f"accept @ {args.rate:.0f}/s", f"p50 {percentile(latencies, 50):.2f} ms,"
                                        f" p99 {percentile(latencies, 99):.2f} ms,"
                                        f" max {max(latencies):.1f} ms (achieved"
                                        f" {achieved:,.0f}/s, {errors} non-200)"),
        ("machine load (1/5/15 min)",
         "before " + " / ".join(f"{x:.2f}" for x in load_before) + ", after "
         + " / ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"),
    ]
    print_results(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="gateway of a running stack (default: start one)")
    parser.add_argument("--api-key", help="key with ingest and read scopes (with --url)")
    parser.add_argument("--events", type=int, default=20_000, help="envelopes sent")
    parser.add_argument("--connections", type=levels_arg, default=[32, 128, 512],
                        help="keep-alive connection counts of the throughput phase, comma"
                             " separated (the first also serves the latency phase)")
    parser.add_argument("--rate", type=float, default=500.0, help="envelopes/s, latency phase")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    run_on_stack(parser, args, lambda url, key, count_rows, workdir: run(
        args, url, key, count_rows, workdir))


if __name__ == "__main__":
    main()
