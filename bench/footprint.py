"""Memory of the whole local stack at idle, in both `ledger up` modes (DESIGN §9 memory row).

    .venv/bin/python bench/footprint.py [--modes one-process,processes] [--idle-seconds 10]
                                        [--load-seconds 0]

For each mode: `ledger up` on a fresh data dir in a temporary folder (embedded PostgreSQL and
Redis, every daemon, the configured services ignored), the time to the ready banner, an idle
wait, then RSS and PSS summed over every process of the stack from /proc/<pid>/smaps_rollup:
`ledger up` and its children (the daemons in --processes mode, redis-server) and the
PostgreSQL postmaster with every process it forked. Then Ctrl-C, and a second start on the same
data for the warm start time. Prints markdown: the machine, one table per mode, a comparison.

RSS counts a shared page once per process that maps it (Python's own pages in every daemon,
PostgreSQL's shared buffers in every backend): it is what DESIGN §9's target is stated in. PSS
divides each shared page among its sharers: the memory the stack really takes.

With ``--load-seconds``, the figures are taken a second time at the end of that long a load:
batches of 1 000 logs sent back to back over 4 connections with the key the banner printed
(as fast as the stack and the key's default rate limit of 1 000 requests a minute allow), with
the logs sent and stored reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import command_line, describe, load_average, memory_kib, tree

from ledger.embedded import free_port

MODES = ("one-process", "processes")
READY = b"Press Ctrl-C to stop"
KEY = re.compile(rb"API key\s+(ledger_\S+)")


@dataclass
class Row:
    name: str
    count: int = 0
    rss_kib: int = 0
    pss_kib: int = 0


@dataclass
class Footprint:
    mode: str
    ready_first_seconds: float
    ready_warm_seconds: float = 0.0
    rows: list[Row] = field(default_factory=list)
    #: The same figures at the end of the load phase (empty without one).
    loaded: list[Row] = field(default_factory=list)
    logs_sent: int = 0

    @property
    def processes(self) -> int:
        return sum(r.count for r in self.rows)

    @property
    def rss_mib(self) -> float:
        return sum(r.rss_kib for r in self.rows) / 1024

    @property
    def pss_mib(self) -> float:
        return sum(r.pss_kib for r in self.rows) / 1024


def role(pid: int, up_pid: int, postmaster: int) -> str:
    """A stable name for one process of the stack (PostgreSQL's by their process title)."""
    words = command_line(pid)
    if pid == up_pid:
        return "ledger up (supervisor)" if "--processes" in words else "ledger up (every daemon)"
    if "serve" in words:
        return f"ledger serve {words[words.index('serve') + 1]}"
    title = " ".join(words)
    if pid == postmaster:
        return "postgres: postmaster"
    if title.startswith("postgres:"):
        # "postgres: postgres ledger_logs [local] idle" is a client backend.
        backend = re.match(r"postgres: \S+ (\S+) \[local\]", title)
        if backend:
            return f"postgres: backend ({backend.group(1)})"
        return re.sub(r"\s+\d+$", "", title.strip())  # "io worker 2" -> "io worker"
    return Path(words[0]).name if words else "?"


def stack_pids(up_pid: int, data: Path) -> tuple[list[int], int]:
    postmaster = int((data / "postgres" / "postmaster.pid").read_text().split()[0])
    # The postmaster is not our child: pg_ctl daemonises it.
    return [*tree(up_pid), *tree(postmaster)], postmaster


def start(mode: str, workdir: Path,
          env: dict[str, str]) -> tuple[subprocess.Popen[bytes], float, str, str]:
    """`ledger up --<mode>` until its banner: the process, seconds to ready, key and URL."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger", "up", f"--{mode}", "--data-dir", str(workdir / ".ledger"),
         "--listen", f"127.0.0.1:{free_port()}"],
        cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = b""
    while READY not in output:
        line = proc.stdout.readline()
        if not line:
            proc.wait(30)
            sys.exit(f"`ledger up --{mode}` exited with {proc.returncode}:\n{output.decode()}")
        output += line
    found = KEY.search(output)
    url = re.search(rb"gateway\s+(http://\S+)", output)
    key = found.group(1).decode() if found else ""
    return proc, time.monotonic() - started, key, url.group(1).decode() if url else ""


def snapshot(up_pid: int, data: Path) -> list[Row]:
    """RSS and PSS of every process of the stack now, one row per role."""
    pids, postmaster = stack_pids(up_pid, data)
    rows: dict[str, Row] = {}
    for pid in pids:
        rss, pss = memory_kib(pid)
        if not rss:
            continue  # exited in between (a short-lived backend)
        name = role(pid, up_pid, postmaster)
        row = rows.setdefault(name, Row(name))
        row.count += 1
        row.rss_kib += rss
        row.pss_kib += pss
    return sorted(rows.values(), key=lambda r: (r.name.startswith("postgres"), r.name))


async def load(url: str, key: str, seconds: float, connections: int = 4) -> int:
    """Batches of 1 000 logs back to back for ``seconds``; the logs accepted (202)."""
    import httpx
    import orjson

    now = time.time()
    body = orjson.dumps({"logs": [
        {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
         "level": "error" if i % 50 == 0 else "info",
         "message": f"GET /checkout answered 200 for user {i}", "environment": "bench"}
        for i in range(1000)]})
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    deadline = time.monotonic() + seconds
    accepted = 0

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        while time.monotonic() < deadline:
            answer = await client.post("/api/v1/ingest/batch", content=body, headers=headers)
            if answer.status_code == 202:
                accepted += 1000
            else:  # 429 past the key's rate limit: wait as told, the stack stays loaded
                await asyncio.sleep(min(float(answer.headers.get("Retry-After", 1)), 1.0))

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(*(sender(client) for _ in range(connections)))
    return accepted


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"`ledger up` stopped with exit code {proc.returncode}")


def measure(mode: str, idle_seconds: float, load_seconds: float = 0.0) -> Footprint:
    """One fresh start, idle, the figures, a stop, and a warm second start."""
    # Only this run's own services: no LEDGER_* from the caller, internal ports picked free
    # here (never the default 5005x that someone else's stack may want).
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    for name in ("auth", "ingest", "query", "alerts"):
        port = free_port()
        env[f"LEDGER_{name.upper()}_LISTEN"] = env[f"LEDGER_{name.upper()}_ADDR"] = \
            f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix=f"ledger-footprint-{mode}-") as tmp:
        workdir = Path(tmp)
        proc, ready, key, url = start(mode, workdir, env)
        result = Footprint(mode, ready)
        try:
            time.sleep(idle_seconds)
            result.rows = snapshot(proc.pid, workdir / ".ledger")
            if load_seconds > 0:
                if not key:
                    sys.exit("no API key in the banner: the load phase needs a fresh data dir")
                # The figures are read during the last second of the load.
                result.logs_sent = asyncio.run(_load_then_snapshot(
                    url, key, load_seconds, proc.pid, workdir / ".ledger", result))
        finally:
            stop(proc)
        again, result.ready_warm_seconds, _, _ = start(mode, workdir, env)
        stop(again)
    return result


async def _load_then_snapshot(url: str, key: str, seconds: float, up_pid: int, data: Path,
                              result: Footprint) -> int:
    sending = asyncio.ensure_future(load(url, key, seconds))
    await asyncio.sleep(max(0.0, seconds - 1.0))
    result.loaded = await asyncio.to_thread(snapshot, up_pid, data)
    return await sending


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def print_markdown(results: list[Footprint], idle_seconds: float, load_before: str,
                   load_after: str) -> None:
    print("| machine | |")
    print("|---|---|")
    for what, value in describe():
        if what.startswith("load average"):
            value = f"{load_before} before, {load_after} after"
        print(f"| {what} | {value} |")
    for result in results:
        print(f"\n`ledger up --{result.mode}`, idle {idle_seconds:.0f} s after the ready banner:"
              "\n")
        print("| process | count | RSS MiB | PSS MiB |")
        print("|---|---|---|---|")
        for row in result.rows:
            print(f"| {row.name} | {row.count} | {mib(row.rss_kib)} | {mib(row.pss_kib)} |")
        print(f"| **total** | {result.processes} | **{result.rss_mib:.1f}** |"
              f" **{result.pss_mib:.1f}** |")
        if result.loaded:
            print(f"\nThe same stack at the end of the load ({result.logs_sent:,} logs"
                  " accepted in batches of 1 000):\n")
            print("| process | count | RSS MiB | PSS MiB |")
            print("|---|---|---|---|")
            for row in result.loaded:
                print(f"| {row.name} | {row.count} | {mib(row.rss_kib)} |"
                      f" {mib(row.pss_kib)} |")
            print(f"| **total** | {sum(r.count for r in result.loaded)} |"
                  f" **{mib(sum(r.rss_kib for r in result.loaded))}** |"
                  f" **{mib(sum(r.pss_kib for r in result.loaded))}** |")
    print("\n| mode | processes | summed RSS MiB | summed PSS MiB | ready, fresh data dir |"
          " ready, warm start |")
    print("|---|---|---|---|---|---|")
    for result in results:
        print(f"| `--{result.mode}` | {result.processes} | {result.rss_mib:.1f} |"
              f" {result.pss_mib:.1f} | {result.ready_first_seconds:.1f} s |"
              f" {result.ready_warm_seconds:.1f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated: one-process, processes")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--load-seconds", type=float, default=0.0,
                        help="also measure at the end of this long an ingest load (0: none)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode {', '.join(unknown)}; modes: {', '.join(MODES)}")
    before = load_average()
    results = [measure(mode, args.idle_seconds, args.load_seconds) for mode in modes]
    print_markdown(results, args.idle_seconds, before, load_average())
    if args.json:
        args.json.write_text(json.dumps(
            [asdict(r) | {"rss_mib": r.rss_mib, "pss_mib": r.pss_mib} for r in results],
            indent=2))


if __name__ == "__main__":
    main()
