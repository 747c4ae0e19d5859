"""Lifecycle of the query daemon: one logs-database pool, one Redis client, one gRPC server."""

from __future__ import annotations

import asyncio
import logging

import grpc
import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from ledger import bus
from ledger.config import Settings
from ledger.daemons.checks import postgres_health, redis_health, require_schema
from ledger.daemons.query.metrics_servicer import MetricsServicer
from ledger.daemons.query.servicer import COUNT_GRACE_SECONDS, QueryServicer
from ledger.db.pool import async_pool, open_pool
from ledger.proto import metrics_pb2_grpc, query_pb2_grpc
from ledger.rpc.server import bind, create_server

logger = logging.getLogger(__name__)

#: A read that runs longer is cancelled by PostgreSQL: it would only hold a connection that
#: the gateway (10 s gRPC deadline) has given up on.
STATEMENT_TIMEOUT_MS = 9_000
GRACE_SECONDS = 5.0


def _with_timeout(url: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    options = str(info.get("options") or "")
    return psycopg.conninfo.make_conninfo(
        url, options=f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip())


class QueryDaemon:
    """Serves ``QueryService`` on ``LEDGER_QUERY_LISTEN``; ``port`` is valid after ``start()``."""

    name = "query"

    def __init__(self, settings: Settings, *,
                 count_grace_seconds: float = COUNT_GRACE_SECONDS) -> None:
        self.settings = settings
        self.count_grace_seconds = count_grace_seconds
        self.port = 0
        self._pool: AsyncConnectionPool | None = None
        self._redis: aioredis.Redis | None = None
        self._server: grpc.aio.Server | None = None
        self._servicer: QueryServicer | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        """Check the schema, open the pool and Redis, bind and start the gRPC server."""
        settings = self.settings
        settings.require("logs_database_url", "redis_url", "internal_token")
        assert settings.logs_database_url and settings.redis_url
        url = settings.logs_database_url
        await require_schema(url, "logs")
        self._pool = async_pool(_with_timeout(url), name="query-logs", min_size=2, max_size=8)
        await open_pool(self._pool, url)
        self._redis = bus.client(settings.redis_url)
        self._server = create_server("query", settings.internal_token, self._health)
        self._servicer = QueryServicer(self._pool, self._redis, settings.auth_retention_days,
                                       self.count_grace_seconds)
        query_pb2_grpc.add_QueryServiceServicer_to_server(self._servicer, self._server)
        metrics_pb2_grpc.add_MetricsServiceServicer_to_server(
            MetricsServicer(self._pool, self._redis), self._server)
        self.port = bind(self._server, settings.query_listen, "query")
        await self._server.start()
        logger.info("query: serving on port %d", self.port)

    async def _health(self) -> dict[str, str]:
        return {"postgres": await postgres_health(self._pool),
                "redis": await redis_health(self._redis)}

    async def wait(self) -> None:
        """Return once ``stop`` ran: gRPC serves from its own threads, nothing here can die."""
        # Not server.wait_for_termination(): cancelling that (as run() does on SIGTERM)
        # cancels grpc's own shutdown future, and the graceful stop then fails.
        await self._stopped.wait()

    async def stop(self) -> None:
        """Let in-flight reads finish (up to a grace period), then close everything."""
        if self._server is not None:
            await self._server.stop(GRACE_SECONDS)
        if self._servicer is not None:
            await self._servicer.close()
        if self._pool is not None:
            await self._pool.close()
        if self._redis is not None:
            await self._redis.aclose()
        self._stopped.set()
