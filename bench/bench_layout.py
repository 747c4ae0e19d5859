"""Ingest across processes: stored logs/s and each process's CPU share, per process layout.

    .venv/bin/python bench/bench_layout.py [--layouts 1x0,1x1,2x1,2x2,auto] [--logs 100000]
                                           [--rounds 2] [--senders 8]

A layout ``AxW`` is A ingest API processes and W writer processes (``1x0``: one ``ledger
serve ingest`` doing both, as before issue 18; ``auto``: what `ledger up --processes` starts
on this machine, ``layout.auto_ingest_layout``). For each round and layout (the order of the
layouts alternates between rounds, so that all see the same machine), on one embedded
PostgreSQL 18 and Redis:

1. raw binary ``COPY`` of ``--logs`` ready rows into ``logs`` (what the table takes, no
   Redis, no decoding: the floor DESIGN §9 compares with), measured right before the stack
   starts and again right after it stops; the floor of the round is the mean of the two, since
   this shared machine's speed drifts within a minute (86 k-154 k rows/s in one run);
2. a stack of real processes (``ledger serve auth``, the layout's ingest processes, one
   gateway whose ``LEDGER_INGEST_ADDR`` lists the API processes), then ``--logs`` logs in
   batches of 1 000 from ``--senders`` connections, the same kind of logs as the raw rows
   (``bench_writers.sample_log``: one in 20 an exception with a stack trace); "stored" is when
   the project's queue is empty again (every log committed), and the rows are counted then:
   one missing or duplicated stops the run;
3. each process's CPU time (user + system) over the batch phase, as a share of one core and
   in µs per log; PostgreSQL is the postmaster and its backends, "bench" the load generator.
   From the µs per log, a projection of what the stack would store with the cores to itself
   (``projection``): CPU time per unit of work depends far less on the machine's other load
   than the wall-clock rate does.

The load average (1 min) is printed before and after each layout: the machine is shared.
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from bench_ingest import Target, batches, row_counter  # noqa: E402
from bench_writers import make_requests, raw_copy, raw_rows, sample_log  # noqa: E402

from ledger.cli.db import migrate_all  # noqa: E402
from ledger.config import Settings  # noqa: E402
from ledger.core.bootstrap import ensure_default_setup  # noqa: E402
from ledger.daemons.layout import auto_ingest_layout  # noqa: E402
from ledger.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: E402
from tests.stack import Stack  # noqa: E402


def cpu_seconds(processes: dict[str, list[psutil.Process]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, procs in processes.items():
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        out[name] = total
    return out


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    return [postmaster, *postmaster.children(recursive=True)]


def start_layout(stack: Stack, api: int, writers: int) -> list[str]:
    """Declare and start the layout's ingest processes, then auth and the gateway."""
    role = "api" if writers else "all"
    labels = ["ingest"]
    stack.settings = stack.settings.with_overrides(ingest_role=role)
    for index in range(2, api + 1):
        stack.add(f"ingest-{index}", "ingest")
        labels.append(f"ingest-{index}")
    for index in range(1, writers + 1):
        stack.add(f"writer-{index}", "ingest", ingest_role="writer")
        labels.append(f"writer-{index}")
    stack.settings = stack.settings.with_overrides(ingest_addr=",".join(
        f"127.0.0.1:{stack.ports[label]}" for label in labels if label.startswith("ingest")))
    stack.start("auth", *labels)
    stack.start("gateway")
    return labels


async def one_layout(args: argparse.Namespace, settings: Settings, key: str, pg_dir: Path,
                     redis_pid: int, workdir: Path, layout: str) -> dict[str, Any]:
    count_rows = row_counter(str(settings.logs_database_url))
    api, writers = parse_layout(layout)
    raw_project = str(uuid.uuid4())
    ready = raw_rows(make_requests(raw_project, args.logs))  # untimed
    # The batches hold the same kind of logs as the raw COPY's rows (sample_log: one in 20 an
    # exception with a stack trace), so that "stored / raw" compares like with like.
    start = datetime.now(UTC) - timedelta(minutes=30)
    make_log = functools.partial(sample_log, start=start)
    raw_before = args.logs / await raw_copy(str(settings.logs_database_url), ready)
    with Stack(settings, workdir / layout) as stack:
        labels = start_layout(stack, api, writers)
        target = Target.from_url(stack.url, key)
        # Warm-up: connections, partitions, caches, and the error groups of the batch.
        await batches(target, 5000, 1000, 2, None, make_log)
        processes = {label: [psutil.Process(stack.daemons[label].proc.pid)]
                     for label in [*labels, "gateway", "auth"]}
        processes["postgres"] = postgres_processes(pg_dir)
        processes["redis"] = [psutil.Process(redis_pid)]
        processes["bench"] = [psutil.Process()]
        load_before = os.getloadavg()[0]
        before = cpu_seconds(processes)
        began = time.perf_counter()
        result = await batches(target, args.logs, 1000, args.senders, count_rows, make_log)
        elapsed = time.perf_counter() - began
        after = cpu_seconds(processes)
        load_after = os.getloadavg()[0]
    again = raw_rows(make_requests(str(uuid.uuid4()), args.logs))  # untimed
    raw_after = args.logs / await raw_copy(str(settings.logs_database_url), again)
    raw = (raw_before + raw_after) / 2
    sent = (args.logs // 1000) * 1000
    if result["rows"] != sent:
        raise SystemExit(f"{layout}: {sent:,} logs accepted, {result['rows']:,.0f} rows added")
    share = {name: (after[name] - before[name]) / elapsed for name in processes}
    per_log = {name: (after[name] - before[name]) / result["logs"] * 1e6 for name in processes}
    return {"layout": layout, "raw": raw, "raw_each": (raw_before, raw_after),
            "stored": result["stored_per_s"],
            "accepted": result["accepted_per_s"], "share": share, "per_log": per_log,
            "projection": projection(per_log),
            "load": (load_before, load_after), "idle": max(0.0, (os.cpu_count() or 1)
                                                           - sum(share.values()))}


def parse_layout(layout: str) -> tuple[int, int]:
    """``AxW`` as (A, W); ``auto`` as what `ledger up --processes` starts on this machine."""
    if layout == "auto":
        return auto_ingest_layout(os.cpu_count() or 1)
    api, writers = (int(x) for x in layout.split("x"))
    return api, writers


def projection(per_log: dict[str, float]) -> float:
    """Logs/s the stack could store on this machine's cores idle, judging by the CPU it spent.

    Two bounds: all the CPU (every process's µs per log, summed, over the cores), and each
    single-threaded process (a Python daemon holds the GIL; Redis has one thread) at one
    core. PostgreSQL runs a backend per connection and the load generator is not the stack.
    """
    cpus = os.cpu_count() or 1
    stack = {n: v for n, v in per_log.items() if n != "bench"}
    bounds = [cpus * 1e6 / sum(stack.values())]
    bounds += [1e6 / v for n, v in stack.items() if n != "postgres" and v > 0]
    return min(bounds)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ledger-bench-layout-") as tmp:
        workdir = Path(tmp)
        os.chmod(tmp, 0o755)  # the embedded PostgreSQL may run as another user
        postgres = EmbeddedPostgres(workdir / "pg")
        postgres.start()
        redis = EmbeddedRedis(workdir / "redis")
        try:
            settings = Settings(
                auth_database_url=postgres.url("ledger_auth"),
                logs_database_url=postgres.url("ledger_logs"),
                redis_url=redis.start(), internal_token=secrets.token_urlsafe(16),
                jwt_secret=secrets.token_urlsafe(32), data_dir=workdir / "data",
                auth_rate_limit_minute=10**9, auth_rate_limit_hour=10**9,
                auth_daily_quota=10**12, queue_max_depth=1_000_000,
            )
            migrate_all(settings)
            assert redis.pid is not None
            key = (await ensure_default_setup(settings)).full_key
            assert key is not None
            layouts = args.layouts.split(",")
            for round_number in range(args.rounds):
                order = layouts if round_number % 2 == 0 else list(reversed(layouts))
                for layout in order:
                    result = await one_layout(args, settings, key, postgres.data_dir, redis.pid,
                                              workdir / f"r{round_number}", layout)
                    results.append(result)
                    print(f"round {round_number + 1} {layout}: stored {result['stored']:,.0f}"
                          f" logs/s, raw COPY {result['raw']:,.0f} rows/s (before"
                          f" {result['raw_each'][0]:,.0f}, after {result['raw_each'][1]:,.0f}),"
                          " load"
                          f" {result['load'][0]:.2f} -> {result['load'][1]:.2f}; CPU "
                          + ", ".join(f"{k} {v:.0%}" for k, v in result["share"].items())
                          + "; µs/log " + ", ".join(f"{k} {v:.1f}"
                                                    for k, v in result["per_log"].items())
                          + f"; idle projection {result['projection']:,.0f} logs/s",
                          flush=True)
        finally:
            redis.stop()
            postgres.stop()
    return results


def report(results: list[dict[str, Any]]) -> None:
    print(f"\n{os.cpu_count()} CPUs; median over rounds per layout\n")
    print("| layout | stored logs/s | raw COPY rows/s | stored / raw | load 1 min | CPU share"
          " per process (of one core) | CPU µs per log | projection, cores idle |")
    print("|---|---|---|---|---|---|---|---|")
    for layout in dict.fromkeys(r["layout"] for r in results):
        mine = [r for r in results if r["layout"] == layout]
        stored = statistics.median(r["stored"] for r in mine)
        raw = statistics.median(r["raw"] for r in mine)
        ratio = statistics.median(r["stored"] / r["raw"] for r in mine)
        loads = ", ".join(f"{a:.1f}→{b:.1f}" for a, b in (r["load"] for r in mine))
        names = list(mine[0]["share"])
        shares = ", ".join(
            f"{n} {statistics.median(r['share'][n] for r in mine):.0%}" for n in names)
        per_log = ", ".join(
            f"{n} {statistics.median(r['per_log'][n] for r in mine):.1f}" for n in names)
        projected = statistics.median(r["projection"] for r in mine)
        name = layout if layout != "auto" else "{}x{} (auto)".format(*parse_layout(layout))
        print(f"| {name} | {stored:,.0f} | {raw:,.0f} | {ratio:.2f} | {loads} | {shares}"
              f" | {per_log} | {projected:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", default="1x0,1x1,2x1,2x2",
                        help="comma-separated AxW: A ingest API and W writer processes, or"
                             " auto: what `ledger up --processes` starts on this machine")
    parser.add_argument("--logs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--senders", type=int, default=8)
    args = parser.parse_args()
    import uvloop

    report(uvloop.run(run(args)))


if __name__ == "__main__":
    main()
