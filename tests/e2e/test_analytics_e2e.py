"""The analytics daemon against real daemons: prune on a fresh stack, one run across copies."""

from __future__ import annotations

import asyncio
import itertools
from datetime import date
from pathlib import Path

import psycopg

from ledger.config import Settings
from ledger.daemons.analytics import create
from ledger.db import partitions
from tests.stack import Stack
from tests.waiting import wait_until_blocking


def test_prune_of_a_daemon_built_before_the_loop_drops_old_partitions(
        settings: Settings, tmp_path: Path) -> None:
    """``ledger serve analytics`` builds the daemon, then calls ``asyncio.run``: the fresh-stack
    prune failed there ("Future attached to a different loop" in ListProjects)."""
    with psycopg.connect(str(settings.logs_database_url), autocommit=True) as conn:
        partitions.ensure_months_sync(conn, [date(2020, 1, 1)])
    with Stack(settings, tmp_path) as stack:
        stack.start("auth")
        daemon = create(stack.settings)  # outside any event loop, as `ledger serve` does

        async def prune() -> list[str]:
            await daemon.start()
            try:
                return (await daemon.prune())["dropped"]
            finally:
                await daemon.stop()

        dropped = asyncio.run(prune())
    assert dropped == ["logs_2020_01"]
    with psycopg.connect(str(settings.logs_database_url)) as conn:
        assert "logs_2020_01" not in partitions.existing_names_sync(conn)


def _history(redis_url: str) -> list[dict[str, object]]:
    import orjson
    import redis

    from ledger import bus

    client = redis.Redis.from_url(redis_url)
    try:
        return [orjson.loads(raw) for raw in client.lrange(bus.JOB_HISTORY, 0, -1)]
    finally:
        client.close()


def test_two_analytics_processes_run_each_job_exactly_once(
        settings: Settings, tmp_path: Path) -> None:
    import subprocess

    from tests.stack import LEDGER

    with Stack(settings, tmp_path,
               extra_env={"LEDGER_ANALYTICS_INTERVAL_SECONDS": "0.2"}) as stack:
        stack.start("auth")
        procs = []
        for i in range(2):
            with (tmp_path / f"analytics{i}.log").open("wb") as out:
                procs.append(subprocess.Popen([*LEDGER, "serve", "analytics"], env=stack.env(),
                                              stdout=out, stderr=subprocess.STDOUT,
                                              cwd=tmp_path))
        try:
            def took_turns() -> bool:
                assert all(p.poll() is None for p in procs), "an analytics copy exited"
                rollups = [r for r in _history(str(settings.redis_url)) if r["job"] == "rollup"]
                return len(rollups) >= 10 and len({r["owner"] for r in rollups}) == 2

            wait_until_blocking(took_turns, "both copies took turns at the rollup a few times",
                                timeout=60, interval=0.1)
        finally:
            for p in procs:
                p.terminate()
            codes = []
            for p in procs:
                try:
                    codes.append(p.wait(30))
                except subprocess.TimeoutExpired:
                    p.kill()  # never leave a copy behind, then fail below
                    codes.append(p.wait(10) or -9)
        assert codes == [0, 0], "an analytics copy did not stop on SIGTERM"
    runs = _history(str(settings.redis_url))
    assert [r["outcome"] for r in runs if r["job"] == "prune"] == ["ok"]
    assert [r["outcome"] for r in runs if r["job"] == "partitions"] == ["ok"]
    # No two runs of one job overlapped in time.
    for job in ("rollup", "caches"):
        spans = sorted((float(str(r["started_at"])), float(str(r["started_at"]))
                        + float(str(r["seconds"]))) for r in runs if r["job"] == job)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), job
