"""AnalyticsDaemon: a LoopDaemon whose jobs are guarded by Redis locks."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from ledger import bus
from ledger.config import Settings
from ledger.daemons.base import LoopDaemon
from ledger.daemons.checks import require_schema
from ledger.db import partitions
from ledger.db.pool import async_pool, open_pool
from ledger.errors import LedgerError
from ledger.rpc.auth_client import AuthClient

logger = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 24 * 3600


class AnalyticsDaemon(LoopDaemon):
    name = "analytics"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        settings.require("logs_database_url", "redis_url", "internal_token")
        self.settings = settings
        self.interval = settings.analytics_interval_seconds
        self.pool: AsyncConnectionPool = async_pool(str(settings.logs_database_url),
                                                    name="analytics-logs", max_size=2)
        self.redis: aioredis.Redis = bus.client(str(settings.redis_url))
        self.auth = AuthClient(settings.auth_addr, str(settings.internal_token))

    async def start(self) -> None:
        await open_pool(self.pool, str(self.settings.logs_database_url))
        await require_schema(str(self.settings.logs_database_url), "logs")

    async def stop(self) -> None:
        await super().stop()
        await self.pool.close()
        await self.redis.aclose()
        await self.auth.close()

    async def run_once(self) -> None:
        if await self._lock("partitions-ahead", ttl=max(30, int(self.interval))):
            async with self.pool.connection() as conn:
                created = await partitions.ensure_months(
                    conn, partitions.months_ahead(datetime.now(UTC)))
            if created:
                logger.info("created partitions %s", ", ".join(created))
        if await self._lock("partitions-prune", ttl=PRUNE_EVERY_SECONDS):
            await self.prune()

    async def prune(self) -> list[str]:
        """Drop partitions older than the longest retention of any project."""
        try:
            projects = await self.auth.list_projects()
        except LedgerError as exc:
            # Never guess a retention: without the projects, keep everything until next time.
            logger.warning("retention unknown (%s); not pruning now", exc.message)
            await self.redis.delete(bus.job_lock("partitions-prune"))
            return []
        retention = max([p.retention_days for p in projects]
                        + [self.settings.auth_retention_days])
        async with self.pool.connection() as conn:
            names = await partitions.existing_names(conn)
            doomed = partitions.expired(names, datetime.now(UTC), retention)
            await partitions.drop(conn, doomed)
        for name in doomed:
            logger.info("dropped partition %s (older than %d days)", name, retention)
        return doomed

    async def _lock(self, job: str, ttl: int) -> bool:
        """True if this copy won the job for the next ``ttl`` seconds."""
        return bool(await self.redis.set(bus.job_lock(job), str(time.time()), nx=True, ex=ttl))
