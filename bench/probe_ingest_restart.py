"""How long the gateway answers 503 after the ingest daemon it talks to comes back.

    .venv/bin/python bench/probe_ingest_restart.py [--outages 0,3,10] [--rate 100]

A stack of its own (embedded PostgreSQL and Redis; auth, ingest and gateway as `ledger serve`
processes). A client sends one log every 1/``--rate`` s to ``POST /ingest/single``, one request
at a time. For each outage: SIGKILL ingest, wait that many seconds, start it again and wait
until its health check answers ("up"); then take the first 202 after the outage's first
refusal. Prints one row per outage: "up → first 202" (negative when the gateway got through
before the health check saw ingest), the refusals counted and their Retry-After, and the load
average before and after. It times a recovery, not a rate, so it has no floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from bench_ingest import one_log
from harness import GENEROUS_LIMITS, import_tests, migrated_servers, print_results


async def probe(args: argparse.Namespace, workdir: Path) -> list[tuple[str, str]]:
    from ledger.core.bootstrap import ensure_default_setup

    import_tests()
    from tests.stack import Stack

    rows: list[tuple[str, str]] = []
    with migrated_servers(workdir, **GENEROUS_LIMITS) as settings:
        setup = await ensure_default_setup(settings)
        assert setup.full_key is not None
        with Stack(settings, workdir / "stack") as stack:
            stack.start("auth", "ingest", "gateway")
            headers = {"Authorization": f"Bearer {setup.full_key}",
                       "Content-Type": "application/json"}
            body = orjson.dumps(one_log())
            outcomes: list[tuple[float, int, str]] = []  # (monotonic, status, Retry-After)
            stop = asyncio.Event()
            answered = asyncio.Event()  # set on every 202

            async def send_forever(http: httpx.AsyncClient) -> None:
                gap = 1.0 / args.rate
                due = time.monotonic()
                while not stop.is_set():
                    due += gap
                    try:
                        answer = await http.post("/api/v1/ingest/single", content=body,
                                                 headers=headers)
                        outcomes.append((time.monotonic(), answer.status_code,
                                         answer.headers.get("retry-after", "")))
                        if answer.status_code == 202:
                            answered.set()
                    except httpx.HTTPError:
                        outcomes.append((time.monotonic(), 0, ""))
                    await asyncio.sleep(max(0.0, due - time.monotonic()))

            async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
                sender = asyncio.create_task(send_forever(http))
                await asyncio.sleep(1.0)
                for outage in args.outages:
                    killed = time.monotonic()
                    stack.kill("ingest")
                    await asyncio.sleep(outage)
                    await asyncio.to_thread(stack.start, "ingest")
                    up = time.monotonic()
                    answered.clear()
                    await asyncio.wait_for(answered.wait(), timeout=60)
                    # The first 202 after the outage's first refusal (not an answer that was
                    # already on its way when ingest was killed).
                    first_refused = min((t for t, s, _ in outcomes if t >= killed and s != 202),
                                        default=killed)
                    first_ok = min(t for t, s, _ in outcomes if t > first_refused and s == 202)
                    during = [(s, r) for t, s, r in outcomes if killed <= t <= first_ok]
                    refused = [s for s, _ in during if s != 202]
                    retry_after = sorted({r for s, r in during if s == 503 and r})
                    rows.append((f"outage {outage:g} s",
                                 f"down → up {up - killed:.2f} s; up → first 202"
                                 f" {first_ok - up:.2f} s; {len(refused)} non-202"
                                 f" ({', '.join(sorted({str(s) for s in refused}))});"
                                 f" Retry-After {', '.join(retry_after) or '-'}"))
                    await asyncio.sleep(1.0)
                stop.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", default="0,3,10",
                        help="comma-separated seconds ingest stays down, one cycle each")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s")
    args = parser.parse_args()
    args.outages = [float(x) for x in args.outages.split(",")]
    before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ledger-probe-") as tmp:
        rows = asyncio.run(probe(args, Path(tmp)))
    rows.append(("load (1/5/15 min)", " / ".join(f"{x:.2f}" for x in before) + " before, "
                 + " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " after"))
    print_results(rows)


if __name__ == "__main__":
    main()
