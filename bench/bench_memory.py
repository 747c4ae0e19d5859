"""Memory of the whole local stack at idle: `ledger up` with embedded PostgreSQL and Redis.

    .venv/bin/python bench/bench_memory.py [--idle-seconds 10]

Starts `ledger up` in a temporary folder, waits for the ready banner, lets it idle, then sums
RSS and PSS (proportional: shared pages divided among the processes sharing them, so
PostgreSQL's shared buffers are not counted once per backend) over every process of the stack:
`ledger up`, its daemons, Redis, and the PostgreSQL postmaster with its backends. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ledger.embedded import free_port


def children(pid: int) -> list[int]:
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            child = int(entry.name)
            out += [child, *children(child)]
    return out


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB from smaps_rollup."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def name_of(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in cmd if w]
    if "serve" in words:
        return f"ledger serve {words[words.index('serve') + 1]}"
    if "up" in words:
        return "ledger up"
    return Path(words[0]).name if words else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-mem-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        started = time.monotonic()
        up = subprocess.Popen(
            [sys.executable, "-m", "ledger", "up", "--data-dir", f"{tmp}/.ledger",
             "--listen", f"127.0.0.1:{free_port()}"],
            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert up.stdout is not None
        output = b""
        while b"Press Ctrl-C" not in output:
            line = up.stdout.readline()
            if not line:
                sys.exit(f"ledger up exited:\n{output.decode()}")
            output += line
        ready = time.monotonic() - started
        time.sleep(args.idle_seconds)
        postmaster = int(Path(f"{tmp}/.ledger/postgres/postmaster.pid").read_text().split()[0])
        pids = [up.pid, *children(up.pid), postmaster, *children(postmaster)]
        rows: dict[str, list[int]] = {}
        for pid in pids:
            rss, pss = memory_kib(pid)
            name = name_of(pid)
            if pid == postmaster or pid in children(postmaster):
                name = "postgres (all processes)"
            entry = rows.setdefault(name, [0, 0, 0])
            entry[0] += 1
            entry[1] += rss
            entry[2] += pss
        print(f"ledger up ready in {ready:.1f}s (first start, fresh data dir)")
        print(f"{'process':32} {'count':>5} {'RSS MiB':>9} {'PSS MiB':>9}")
        for name, (count, rss, pss) in sorted(rows.items()):
            print(f"{name:32} {count:5d} {rss / 1024:9.1f} {pss / 1024:9.1f}")
        total_rss = sum(r[1] for r in rows.values()) / 1024
        total_pss = sum(r[2] for r in rows.values()) / 1024
        print(f"{'TOTAL':32} {len(pids):5d} {total_rss:9.1f} {total_pss:9.1f}")
        up.send_signal(signal.SIGINT)
        up.wait(60)
        # Second start on the same data: the warm start time the README quotes.
        started = time.monotonic()
        again = subprocess.Popen(
            [sys.executable, "-m", "ledger", "up", "--data-dir", f"{tmp}/.ledger",
             "--listen", f"127.0.0.1:{free_port()}"],
            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert again.stdout is not None
        for line in again.stdout:
            if b"Press Ctrl-C" in line:
                break
        print(f"ledger up ready in {time.monotonic() - started:.1f}s (warm second start)")
        again.send_signal(signal.SIGINT)
        again.wait(60)


if __name__ == "__main__":
    main()
