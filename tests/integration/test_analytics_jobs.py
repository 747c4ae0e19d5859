"""The analytics job runner: one run at a time, the lock released whatever the job raised,
failures logged and retried at the next tick."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from ledger import bus
from ledger.cli.main import app
from ledger.config import Settings
from ledger.daemons.analytics import create
from ledger.daemons.analytics.runner import Job, JobRunner, history
from ledger.daemons.auth import create as create_auth
from ledger.db import partitions
from tests.logrows import insert_logs, log
from tests.ports import free_port


async def test_lock_is_released_after_a_failing_job(aredis: aioredis.Redis) -> None:
    runner = JobRunner(aredis, "copy-a")
    job = Job("demo", 60)

    async def boom() -> dict[str, object]:
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        await runner.run(job, boom, scheduled=True)
    assert await aredis.get(bus.job_lock("demo")) is None
    assert await runner.due(job)  # a failure is not a success: the next tick retries
    runs = await history(aredis, "demo")
    assert runs[0]["outcome"] == "failed" and "the database went away" in runs[0]["error"]


async def test_a_held_lock_means_busy_and_a_recent_run_means_not_due(
        aredis: aioredis.Redis) -> None:
    a, b = JobRunner(aredis, "copy-a"), JobRunner(aredis, "copy-b")
    job = Job("demo", 3600)
    started = asyncio.Event()
    release = asyncio.Event()
    ran: list[str] = []

    async def slow() -> dict[str, object]:
        ran.append("a")
        started.set()
        await release.wait()
        return {}

    async def quick() -> dict[str, object]:
        ran.append("b")
        return {}

    first = asyncio.create_task(a.run(job, slow, scheduled=True))
    await started.wait()
    assert (await b.run(job, quick, scheduled=True)).outcome == "busy"
    release.set()
    assert (await first).outcome == "ok"
    assert (await b.run(job, quick, scheduled=True)).outcome == "not-due"
    assert ran == ["a"]
    assert await aredis.get(bus.job_lock("demo")) is None


async def test_failing_prune_is_logged_and_retried_once_auth_is_back(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    settings = settings.with_overrides(auth_addr=f"127.0.0.1:{port}",
                                       auth_listen=f"127.0.0.1:{port}")
    daemon = create(settings)
    await daemon.start()
    auth = None
    try:
        with caplog.at_level(logging.ERROR):
            await daemon.run_once()  # auth is not running: prune fails, the rest runs
        assert "job prune failed" in caplog.text
        runs = {r["job"]: r for r in reversed(await history(daemon.redis))}  # newest wins
        assert runs["prune"]["outcome"] == "failed"
        assert "retention unknown" in runs["prune"]["error"]
        assert runs["partitions"]["outcome"] == "ok"
        async with daemon.pool.connection() as conn:
            assert partitions.partition_name(partitions.month_of(datetime.now(UTC))) in (
                await partitions.existing_names(conn))

        # A 7-day project with logs 10 days old beside a 90-day one: only the first is trimmed.
        short, long = str(uuid.uuid4()), str(uuid.uuid4())
        with psycopg.connect(str(settings.auth_database_url), autocommit=True) as conn:
            for project, days in ((short, 7), (long, 90)):
                conn.execute("INSERT INTO accounts (id, email, password_hash)"
                             " VALUES (%s, %s, 'x')", (project, f"{project}@example.com"))
                conn.execute("INSERT INTO projects (id, account_id, name, slug, retention_days)"
                             " VALUES (%s, %s, %s, %s, %s)",
                             (project, project, project[:8], project[:8], days))
        old = datetime.now(UTC) - timedelta(days=10)
        insert_logs(str(settings.logs_database_url),
                    [log(p, old + timedelta(minutes=i)) for p in (short, long) for i in range(3)])
        auth = create_auth(settings)
        await auth.start()
        assert daemon.auth is not None
        await asyncio.wait_for(daemon.auth.channel.channel_ready(), 10)
        await daemon.run_once()
        runs = {r["job"]: r for r in reversed(await history(daemon.redis))}  # newest wins
        assert runs["prune"]["outcome"] == "ok"
        assert runs["prune"]["summary"]["trimmed"] == {short: 3}
        with psycopg.connect(str(settings.logs_database_url)) as conn:
            left = conn.execute("SELECT project_id::text, count(*) FROM logs GROUP BY 1").fetchall()
        assert dict(left) == {long: 3}  # type: ignore[arg-type]
        assert len(await history(daemon.redis, "partitions")) == 1  # hourly: not again
    finally:
        if auth is not None:
            await auth.stop()
        await daemon.stop()


def test_cli_runs_a_job_and_refuses_an_unknown_one(settings: Settings) -> None:
    runner = CliRunner()
    env = settings.to_env()
    done = runner.invoke(app, ["analytics", "run", "partitions", "--json"], env=env)
    assert done.exit_code == 0, done.output
    assert '"outcome": "ok"' in done.output
    bad = runner.invoke(app, ["analytics", "run", "nonsense"], env=env)
    assert bad.exit_code == 64 and "unknown job 'nonsense'" in bad.output
    bad_hour = runner.invoke(app, ["analytics", "run", "rollup", "--hour", "yesterday"],
                             env=env)
    assert bad_hour.exit_code == 64 and "--hour" in bad_hour.output
    listed = runner.invoke(app, ["analytics", "history", "--json"], env=env)
    assert listed.exit_code == 0 and '"partitions"' in listed.output


async def test_a_cancelled_daemon_loop_always_ends(settings: Settings) -> None:
    """SIGTERM cancels the daemon's loop wherever it is: even when a library swallows the
    cancellation inside a Redis command, the loop ends (it would otherwise run forever)."""
    daemon = create(settings.with_overrides(auth_addr=f"127.0.0.1:{free_port()}",
                                            analytics_interval_seconds=0.01))
    await daemon.start()
    try:
        for job in ("partitions", "prune"):  # keep the ticks to the quick Redis-only jobs
            del daemon.jobs[job]
        for steps in range(1, 40):
            task = asyncio.create_task(daemon.wait())
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=30)
            assert task in done, f"the loop went on after a cancel at step {steps}"
            assert task.cancelled()
    finally:
        await daemon.stop()
