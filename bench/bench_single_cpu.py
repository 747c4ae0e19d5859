"""Single-log ``POST /ingest/single``: CPU per request of the gateway and ingest processes.

    .venv/bin/python bench/bench_single_cpu.py [--seconds 5] [--connections 32] [--rate 1000]
    .venv/bin/python bench/bench_single_cpu.py --profile /tmp/prof   # + py-spy of both daemons

On a shared machine the requests/s of ``bench_ingest.py`` swing with the others' load; the CPU
each daemon spends per request (user + system time from ``/proc/<pid>/stat``, read before and
after the closed-loop phase) holds still. Same stack as ``bench_ingest.py`` (embedded
PostgreSQL and Redis, ``ledger serve auth/ingest/gateway``, ingest with its writers) and the
same FastAPI stub, measured in the same run, for the ratio. Prints one table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
from bench_ingest import STUB_PATH, Target, fixed_rate, max_throughput, one_log, stub_process
from harness import GENEROUS_LIMITS, import_tests, migrated_servers, percentile, print_results


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def syscalls(pid: int) -> tuple[int, int]:
    """Read and write system calls of process ``pid`` so far (``/proc/<pid>/io``).

    A socket write costs more than most of the Python around it (py-spy --native), and its
    count per request, unlike its µs, does not move with the machine's load.
    """
    counts = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(counts["syscr"]), int(counts["syscw"])


async def measure(args: argparse.Namespace) -> None:
    from ledger.core.bootstrap import ensure_default_setup

    import_tests()
    from tests.stack import Stack

    rows: list[tuple[str, str]] = [("load before (1/5/15 min)",
                                    " / ".join(f"{x:.2f}" for x in os.getloadavg()))]
    single = orjson.dumps(one_log())
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp, \
            migrated_servers(Path(tmp), **GENEROUS_LIMITS) as settings:
        setup = await ensure_default_setup(settings)
        assert setup.full_key is not None
        with Stack(settings, Path(tmp) / "stack") as stack:
            stack.start("auth", "ingest", "gateway")
            gateway = Target.from_url(stack.url, setup.full_key)
            pids = {name: stack.daemons[name].proc.pid for name in ("gateway", "ingest")}
            await max_throughput(gateway, "/api/v1/ingest/single", single, 8, 1)  # warm up
            with stub_process() as stub_url:
                stub = Target.from_url(stub_url, None)
                stub_max, _ = await max_throughput(stub, STUB_PATH, single, args.connections,
                                                   args.seconds)
            spies = [subprocess.Popen(  # noqa: ASYNC220 (starts in ms, before the timing)
                [str(Path(sys.executable).parent / "py-spy"), "record", "-r", "200", "--format",
                 "raw", "-d", str(int(args.seconds)), "-o", str(args.profile / f"{name}.txt"),
                 "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for name, pid in pids.items()] if args.profile else []
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            calls_before = syscalls(pids["gateway"])
            rate, errors = await max_throughput(gateway, "/api/v1/ingest/single", single,
                                                args.connections, args.seconds)
            spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            calls = [after - was for after, was in zip(syscalls(pids["gateway"]), calls_before,
                                                       strict=True)]
            for spy in spies:
                spy.wait(30)
            count = rate * args.seconds
            rows.append(("stub 202: max", f"{stub_max:,.0f} req/s"))
            rows.append(("single: max", f"{rate:,.0f} req/s = {rate / stub_max:.2f} x stub"
                                        f" ({errors} non-2xx)"))
            for name, seconds in spent.items():
                rows.append((f"{name} CPU per request (max phase)",
                             f"{seconds / count * 1e6:,.0f} µs ({seconds / args.seconds:.0%}"
                             " of a core)"))
            rows.append(("gateway system calls per request (max phase)",
                         f"{calls[0] / count:.2f} reads, {calls[1] / count:.2f} writes"))
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            latencies, lat_errors, achieved = await fixed_rate(
                gateway, "/api/v1/ingest/single", single, args.rate, args.seconds,
                args.connections)
            spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            rows.append((f"single @ {args.rate:.0f}/s",
                         f"p50 {percentile(latencies, 50):.2f} ms, p99"
                         f" {percentile(latencies, 99):.2f} ms (achieved {achieved:,.0f}/s,"
                         f" {lat_errors} non-2xx)"))
            for name, seconds in spent.items():
                rows.append((f"{name} CPU per request (@ {args.rate:.0f}/s)",
                             f"{seconds / len(latencies) * 1e6:,.0f} µs"))
    rows.append(("load after (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())))
    print_results(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--profile", type=Path,
                        help="folder: py-spy profiles of both daemons during the max phase"
                             " (gateway.txt, ingest.txt; bench/profile_shares.py reads them)")
    args = parser.parse_args()
    import uvloop

    uvloop.run(measure(args))


if __name__ == "__main__":
    main()
