"""Lifecycle of the query daemon: one logs-database pool, one Redis client, one gRPC server."""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg_pool import AsyncConnectionPool

from ledger import bus
from ledger.config import Settings, masked
from ledger.daemons.base import GrpcDaemon
from ledger.daemons.checks import postgres_health, require_schema
from ledger.daemons.query.grouping_servicer import GroupingServicer
from ledger.daemons.query.metrics_servicer import MetricsServicer
from ledger.daemons.query.servicer import COUNT_GRACE_SECONDS, QueryServicer
from ledger.db.pool import async_pool, open_pool
from ledger.proto import grouping_pb2_grpc, metrics_pb2_grpc, query_pb2_grpc
from ledger.rpc.server import bind, create_server

logger = logging.getLogger(__name__)

#: A read that runs longer is cancelled by PostgreSQL: it would only hold a connection that
#: the gateway (5 s gRPC deadline, ``QUERY_DEADLINE_SECONDS``) has given up on.
STATEMENT_TIMEOUT_MS = 4_500
GRACE_SECONDS = 5.0


def _with_timeout(url: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    options = str(info.get("options") or "")
    return psycopg.conninfo.make_conninfo(
        url, options=f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip())


class QueryDaemon(GrpcDaemon):
    """Serves ``QueryService`` and ``GroupingService`` on ``LEDGER_QUERY_LISTEN``.

    ``port`` is valid after ``start()``.
    """

    name = "query"
    stop_grace_seconds = GRACE_SECONDS

    def __init__(self, settings: Settings, *,
                 count_grace_seconds: float = COUNT_GRACE_SECONDS) -> None:
        super().__init__(settings)
        self.count_grace_seconds = count_grace_seconds
        self._servicer: QueryServicer | None = None
        self._read_pool: AsyncConnectionPool | None = None

    async def start(self) -> None:
        """Check the schema, open the pool and Redis, bind and start the gRPC server."""
        settings = self.settings
        settings.require("logs_database_url", "redis_url", "internal_token")
        assert settings.logs_database_url and settings.redis_url
        url = settings.logs_database_url
        await require_schema(url, "logs")
        self._pool = async_pool(_with_timeout(url), name="query-logs", min_size=2, max_size=8,
                                idle_seconds=settings.db_pool_idle_seconds)
        await open_pool(self._pool, url)
        reads = self._pool
        if settings.query_database_url:
            # Reads from a replica; the writes (a group's status, grouping settings and
            # merges) stay on the primary: a replica refuses them, and a person who just
            # changed a rule must see it at once.
            read_url = settings.query_database_url
            self._read_pool = async_pool(_with_timeout(read_url), name="query-reads",
                                         min_size=2, max_size=8)
            try:
                await open_pool(self._read_pool, read_url)
            except BaseException:
                self._read_pool = None
                await self._close_clients()
                raise
            reads = self._read_pool
            logger.info("query: reading from %s, writing to %s", masked(read_url), masked(url))
        self._redis = bus.client(settings.redis_url)
        self._server = create_server("query", settings.internal_token, self._health,
                                     observe=self.observe_rpcs,
                                     also_accepted=settings.tokens_also_accepted())
        self._servicer = QueryServicer(reads, self._redis, settings.auth_retention_days,
                                       self.count_grace_seconds, write_pool=self._pool)
        query_pb2_grpc.add_QueryServiceServicer_to_server(self._servicer, self._server)
        grouping_pb2_grpc.add_GroupingServiceServicer_to_server(
            GroupingServicer(self._pool), self._server)
        metrics_pb2_grpc.add_MetricsServiceServicer_to_server(
            MetricsServicer(reads, self._redis), self._server)
        self.port = bind(self._server, settings.query_listen, "query")
        await self._server.start()
        logger.info("query: serving on port %d", self.port)

    async def _close_clients(self) -> None:
        # The servicer's background counts use the pool: they end first.
        if self._servicer is not None:
            await self._servicer.close()
        if self._read_pool is not None:
            await self._read_pool.close()
            self._read_pool = None
        await super()._close_clients()

    async def _health(self) -> dict[str, str]:
        if not self.settings.query_database_url:
            return await super()._health()
        # Concurrently: the whole report must fit in the gateway's deadline.
        checks, reads = await asyncio.gather(super()._health(),
                                             postgres_health(self._read_pool))
        return {**checks, "postgres_reads": reads}
