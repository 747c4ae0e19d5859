"""The benchmark suite: `make bench-quick` (about a minute) and `make bench` (under 15 minutes).

    .venv/bin/python bench/suite.py [--quick] [--only footprint,ingest]

Runs the scripts of bench/ one after the other, each with bounded arguments and a time limit,
then prints markdown: the machine (cores, load average before and after, Python, PostgreSQL
and Redis versions), one row per benchmark (command, seconds, outcome) and each benchmark's
own output. Every script starts its own stack (embedded PostgreSQL and Redis, daemons) and
stops it; a script past its limit gets SIGINT (its clean-up runs), then SIGKILL, and whatever
it started that is still running afterwards is stopped here: processes are recognised by a
token in their environment (``BENCH_SUITE_RUN``), which the daemonised PostgreSQL inherits
too, so nothing that another run started is touched.

The machine this runs on is usually shared: speed figures are only comparable as ratios taken
in the same run, and only on an idle machine as absolute numbers; footprint figures are fair.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, load_average

BENCH = Path(__file__).resolve().parent
MARK = "BENCH_SUITE_RUN"


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    quick: tuple[str, ...] | None  # None: not part of the quick suite
    full: tuple[str, ...]
    limit_seconds: float
    quick_limit_seconds: float = 90.0


# Full-suite limits add up to 14 min 50 s (890 s); a run on an idle machine takes less. Each
# limit was set from a run on this 2-core machine at load average 10-15, with some margin
# (footprint and ingest took 184 and 83 s of 240 and 160 on an idle one).
SUITE = (
    Bench("footprint", "footprint.py", ("--modes", "one-process", "--idle-seconds", "5"),
          ("--idle-seconds", "65", "--load-seconds", "15"), 240, 60),
    # Three connection counts per single-log maximum: 82 s idle, 59 s before the sweep.
    Bench("ingest", "bench_ingest.py", ("--logs", "20000", "--seconds", "3", "--rounds", "1"),
          ("--logs", "100000", "--seconds", "5"), 160, 90),
    # Batched ingest against raw COPY of the same kind of rows, in one run: ingest as one
    # process with its writers (as in `ledger up`) and as `ledger up --processes` lays it out
    # on this machine (about 75 s on an idle one).
    Bench("layout", "bench_layout.py", None,
          ("--layouts", "1x0,auto", "--logs", "100000", "--rounds", "3"), 100),
    Bench("writers", "bench_writers.py", None, ("--logs", "30000", "--rounds", "2"), 100),
    Bench("otlp", "bench_otlp.py", None,
          ("--logs", "20000", "--rounds", "5", "--calls", "20000"), 60),
    Bench("sentry", "bench_sentry.py", None, ("--events", "6000", "--seconds", "5"), 90),
    Bench("live", "bench_live.py", None,
          ("--errors", "300", "--clients", "100,1000", "--burst-errors", "20"), 55),
    Bench("alerts", "bench_alerts.py", None,
          ("--groups", "50", "--projects", "20", "--rules-per-project", "5", "--rate", "2000",
           "--seconds", "8"), 85),
)


@dataclass
class Outcome:
    bench: Bench
    command: str
    seconds: float
    status: str
    output: str


def ours(token: str) -> list[int]:
    """Processes still running that this run started (the token is in their environment)."""
    found = []
    needle = f"{MARK}={token}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def stop_leftovers(token: str, grace_seconds: float = 20.0) -> list[int]:
    """SIGINT (PostgreSQL's fast shutdown, Python's KeyboardInterrupt), then SIGKILL."""
    left = ours(token)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + grace_seconds
    while ours(token) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in ours(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def run(bench: Bench, args: tuple[str, ...], limit: float, token: str) -> Outcome:
    argv = [sys.executable, str(BENCH / bench.script), *args]
    command = " ".join([".venv/bin/python", f"bench/{bench.script}", *args])
    env = os.environ | {MARK: token}
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=BENCH.parent, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        raw, _ = proc.communicate(timeout=limit)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            raw, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raw, _ = proc.communicate()
        status = f"stopped at its {limit:.0f} s limit"
    seconds = time.monotonic() - started
    leftovers = stop_leftovers(token)
    if leftovers:
        status += f"; stopped {len(leftovers)} leftover processes"
    text = raw.decode(errors="replace")
    # Library warnings on stderr (platformdirs' XDG_RUNTIME_DIR...) say nothing about speed.
    noise = ("RuntimeDirWarning", "return Path(self.user_runtime_dir)")
    lines = [line for line in text.splitlines() if not any(n in line for n in noise)]
    return Outcome(bench, command, seconds, status, "\n".join(lines).strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the one-minute selection")
    parser.add_argument("--only", help="comma-separated benchmark names: "
                        + ", ".join(b.name for b in SUITE))
    args = parser.parse_args()
    chosen = [b for b in SUITE if not args.quick or b.quick is not None]
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - {b.name for b in SUITE}
        if unknown:
            parser.error(f"unknown benchmark {', '.join(sorted(unknown))}")
        chosen = [b for b in chosen if b.name in wanted]
    token = secrets.token_hex(8)
    before = load_average()
    started = time.monotonic()
    outcomes = []
    try:
        for bench in chosen:
            bench_args = bench.quick if args.quick and bench.quick is not None else bench.full
            limit = bench.quick_limit_seconds if args.quick else bench.limit_seconds
            print(f"running {bench.name}…", file=sys.stderr, flush=True)
            outcomes.append(run(bench, bench_args, limit, token))
    finally:
        stop_leftovers(token)
    after = load_average()
    print(f"# Ledger benchmarks ({'quick' if args.quick else 'full'}),"
          f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},"
          f" {time.monotonic() - started:.0f} s\n")
    print("| machine | |\n|---|---|")
    for what, value in describe():
        if what.startswith("load average"):
            value = f"{before} before, {after} after"
        print(f"| {what} | {value} |")
    print("\n| benchmark | command | seconds | outcome |\n|---|---|---|---|")
    for o in outcomes:
        print(f"| {o.bench.name} | `{o.command}` | {o.seconds:.0f} | {o.status} |")
    for o in outcomes:
        print(f"\n## {o.bench.name}\n\n`{o.command}`\n\n{o.output}")
    if any(o.status != "ok" for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
