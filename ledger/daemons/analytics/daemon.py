"""AnalyticsDaemon: a LoopDaemon whose jobs run under Redis locks, once across all copies.

Jobs (each also run once by ``ledger analytics run <job>``):

* ``partitions``: this month's partition and two ahead, so writers never create one (hourly);
* ``prune``: drop partitions past the longest retention, trim shorter-lived projects (daily);
* ``rollup``: recompute the (project, hour) rollups that writers touched — late logs included
  (every tick); with an hour, recompute that hour for every project;
* ``caches``: refresh the Redis metric caches of every project active in the last 24 h.

A job that fails is logged with its cause and retried at the next tick; the daemon goes on.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from ledger import bus
from ledger.config import Settings
from ledger.core import metrics, retention, rollups
from ledger.daemons.analytics.runner import Job, JobRun, JobRunner
from ledger.daemons.base import LoopDaemon
from ledger.daemons.checks import require_schema
from ledger.daemons.prometheus import LATENCY_BUCKETS, Registry
from ledger.db import partitions
from ledger.db.pool import async_pool, open_pool
from ledger.errors import InvalidInputError, LedgerError, UnavailableError
from ledger.rpc.auth_client import AuthClient

logger = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 24 * 3600
PARTITIONS_EVERY_SECONDS = 3600
#: Touched-hour batches recomputed per rollup run; what is left waits for the next tick.
ROLLUP_BATCHES_PER_RUN = 20


class AnalyticsDaemon(LoopDaemon):
    name = "analytics"

    def __init__(self, settings: Settings, *, owner: str | None = None) -> None:
        super().__init__()
        settings.require("logs_database_url", "redis_url", "internal_token")
        self.settings = settings
        self.interval = settings.analytics_interval_seconds
        self.pool: AsyncConnectionPool = async_pool(str(settings.logs_database_url),
                                                    name="analytics-logs", max_size=2,
                                                    idle_seconds=settings.db_pool_idle_seconds)
        self.redis: aioredis.Redis = bus.client(str(settings.redis_url))
        self.runner = JobRunner(self.redis, owner)
        self.metrics = Registry(self.name)
        self._runs = self.metrics.counter(
            "ledger_analytics_job_runs_total",
            "Job runs of this copy by outcome (ok, failed; busy: another copy held the lock;"
            " not-due: another copy ran it recently).", ("job", "outcome"))
        self._seconds = self.metrics.histogram(
            "ledger_analytics_job_duration_seconds", "Time a job run took (ok or failed).",
            (*LATENCY_BUCKETS, 30.0, 60.0, 300.0), ("job",))
        self._last_ok = self.metrics.gauge(
            "ledger_analytics_job_last_success_timestamp_seconds",
            "When a job last succeeded on this copy (Unix time).", ("job",))
        # Made in start(): a grpc.aio channel belongs to the event loop running when it is
        # created, and `ledger serve` builds daemons before asyncio.run starts the loop.
        self.auth: AuthClient | None = None
        # A tick a little early still counts: otherwise jitter would skip every other tick.
        tick = max(self.interval * 0.9, 0.1)
        self.jobs = {job.name: job for job in (
            Job("partitions", PARTITIONS_EVERY_SECONDS, 120),
            Job("prune", PRUNE_EVERY_SECONDS, 600),
            Job("rollup", tick, 300),
            Job("caches", tick, 120),
        )}

    async def start(self) -> None:
        await open_pool(self.pool, str(self.settings.logs_database_url))
        await require_schema(str(self.settings.logs_database_url), "logs")
        self.auth = AuthClient(self.settings.auth_addr, str(self.settings.internal_token))

    async def stop(self) -> None:
        await super().stop()
        await self.pool.close()
        await self.redis.aclose()
        if self.auth is not None:
            await self.auth.close()

    async def run_once(self) -> None:
        """One tick: every job that is due, each under its lock; failures are logged."""
        for job in self.jobs.values():
            began = time.monotonic()
            try:
                run = await self.runner.run(job, functools.partial(self.work, job.name),
                                            scheduled=True)
            except Exception:
                self._runs.inc(job=job.name, outcome="failed")
                self._seconds.observe(time.monotonic() - began, job=job.name)
                logger.exception("analytics: job %s failed; retrying in %.0fs", job.name,
                                 self.interval)
                continue
            self._runs.inc(job=job.name, outcome=run.outcome)
            if run.outcome == "ok":
                self._seconds.observe(run.seconds, job=job.name)
                self._last_ok.set(run.started_at, job=job.name)
            if run.outcome == "ok" and any(run.summary.values()):
                logger.info("analytics: %s done in %.2fs: %s", job.name, run.seconds,
                            run.summary)
            _stop_if_cancelled()

    async def run_job(self, name: str, *, hour: datetime | None = None) -> JobRun:
        """Run one job now, whatever the schedule (still under its lock)."""
        job = self.jobs.get(name)
        if job is None:
            raise InvalidInputError(f"unknown job {name!r}; jobs: {', '.join(self.jobs)}")
        if hour is not None and name != "rollup":
            raise InvalidInputError("--hour applies to the rollup job only")
        return await self.runner.run(job, lambda: self.work(name, hour=hour))

    async def work(self, name: str, *, hour: datetime | None = None) -> dict[str, Any]:
        if name == "partitions":
            return await self.ensure_partitions()
        if name == "prune":
            return await self.prune()
        if name == "rollup":
            return await self.rollup(hour)
        return await self.refresh_caches()

    async def ensure_partitions(self) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            created = await partitions.ensure_months(
                conn, partitions.months_ahead(datetime.now(UTC)))
        return {"created": created}

    async def retentions(self) -> dict[str, int]:
        """Retention in days of every project, asked of the auth daemon."""
        if self.auth is None:
            raise UnavailableError("analytics is not started")
        try:
            projects = await self.auth.list_projects()
        except LedgerError as exc:
            # Never guess a retention: without the projects, keep everything until next time.
            raise UnavailableError(f"retention unknown, not pruning ({exc.message})") from exc
        return {p.id: p.retention_days for p in projects}

    async def prune(self) -> dict[str, Any]:
        """Drop partitions past the longest retention; trim projects with a shorter one."""
        todo = retention.plan((await self._partition_names()), await self.retentions(),
                              self.settings.auth_retention_days, datetime.now(UTC))
        async with self.pool.connection() as conn:
            await conn.set_autocommit(True)
            outcome = await retention.apply(conn, todo)
        for info in outcome.dropped:
            logger.info("analytics: dropped partition %s (older than %d days)", info.name,
                        todo.retention_days)
        return {"dropped": [i.name for i in outcome.dropped], "trimmed": outcome.trimmed}

    async def _partition_names(self) -> list[str]:
        async with self.pool.connection() as conn:
            return await partitions.existing_names(conn)

    async def rollup(self, hour: datetime | None = None) -> dict[str, Any]:
        """Recompute touched (project, hour) rollups, or one ``hour`` for every project."""
        if hour is not None:
            async with self.pool.connection() as conn:
                await rollups.recompute_hour(conn, hour)
            return {"hours": [rollups.hour_of(hour).isoformat()], "projects": "all"}
        pairs = 0
        # Whatever a run that failed or died took is recomputed first (we hold the lock).
        await rollups.recover_touched(self.redis)
        for _ in range(ROLLUP_BATCHES_PER_RUN):
            touched = await rollups.pop_touched(self.redis)
            if not touched:
                break
            async with self.pool.connection() as conn:
                for start, projects in sorted(touched.items()):
                    await rollups.recompute_hour(conn, start, projects)
            await rollups.finish_touched(self.redis, touched)
            pairs += sum(len(p) for p in touched.values())
        return {"recomputed": pairs}

    async def refresh_caches(self) -> dict[str, Any]:
        """Recompute the cached figures of every project with logs in the last 24 h."""
        now = datetime.now(UTC)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT project_id FROM aggregated_metrics"
                " WHERE metric_type = 'log_volume' AND bucket_start >= %s",
                (now - timedelta(hours=25),))
            projects = [str(r[0]) for r in await cur.fetchall()]
            for project_id in projects:
                for name in metrics.CACHED:
                    await metrics.refresh(conn, self.redis, project_id, name, now)
        return {"projects": len(projects)}


def _stop_if_cancelled() -> None:
    """Raise the cancellation (SIGTERM) that a library swallowed.

    redis-py 8.1's asyncio client loses a ``CancelledError`` that lands at certain points of a
    command (measured: a loop of GETs cancelled at random steps went on in about one case in
    four), and the daemon would then never stop. The task still counts the request
    (``Task.cancelling()``), so it is raised here, between jobs.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
