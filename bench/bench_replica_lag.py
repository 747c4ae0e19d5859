"""How long a commit on the primary takes to be readable on a streaming replica (issue 16).

    .venv/bin/python bench/bench_replica_lag.py [--commits 200]

Starts a primary and a replica of it (``initdb``, ``pg_basebackup -R``, the same servers as
``tests/integration/test_query_replica.py``) on loopback, then commits one row at a time on
the primary and polls the replica until it reads it: the delay a ``LEDGER_QUERY_DATABASE_URL``
replica adds to "stored" before a read shows it. Run twice: with ``synchronous_commit = on``
(PostgreSQL's default) and ``off``, where the primary sends WAL only when its WAL writer
flushes (every ``wal_writer_delay``, 200 ms by default).
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.test_query_replica import ServerPair


def measure(pair: ServerPair, commits: int, synchronous: str) -> list[float]:
    with psycopg.connect(pair.url("primary"), autocommit=True) as primary, \
            psycopg.connect(pair.url("replica"), autocommit=True) as replica:
        primary.execute(f"SET synchronous_commit = {synchronous}")
        table = f"lag_{synchronous}"
        primary.execute(f"CREATE TABLE {table} (i int PRIMARY KEY)")
        while replica.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
            time.sleep(0.01)
        lags = []
        for i in range(commits):
            began = time.perf_counter()
            primary.execute(f"INSERT INTO {table} VALUES (%s)", (i,))
            while not replica.execute(f"SELECT 1 FROM {table} WHERE i = %s", (i,)).fetchone():
                pass
            lags.append((time.perf_counter() - began) * 1000)
            time.sleep(0.01)
    return sorted(lags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=200)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ledger-replica-bench-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    pair = ServerPair(root)
    pair.start()
    try:
        print("| synchronous_commit | commits | p50 ms | p99 ms | max ms |")
        print("|---|---:|---:|---:|---:|")
        for mode in ("on", "off"):
            lags = measure(pair, args.commits, mode)
            p99 = lags[max(0, int(len(lags) * 0.99) - 1)]
            print(f"| {mode} | {len(lags)} | {statistics.median(lags):.1f} | {p99:.1f} |"
                  f" {lags[-1]:.1f} |")
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        pair.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
