"""AuthDaemon: a gRPC server over one auth-database pool and one Redis client."""

from __future__ import annotations

import asyncio
import logging

import grpc
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from ledger.config import Settings
from ledger.core.connections import connect_redis
from ledger.core.projects import ProjectDefaults
from ledger.daemons.auth.servicer import AuthServicer
from ledger.daemons.checks import postgres_health, redis_health, require_schema
from ledger.db.pool import async_pool, open_pool
from ledger.proto import auth_pb2_grpc
from ledger.rpc.server import bind, create_server

logger = logging.getLogger(__name__)

# In-flight calls get this long to finish after SIGTERM; then they are cancelled.
STOP_GRACE_SECONDS = 5.0
# Each uncached key check holds a connection through its bcrypt (~50 ms): allow some overlap.
POOL_MAX_SIZE = 16


class AuthDaemon:
    """Serves ``ledger.v1.AuthService`` and health; ``port`` is the bound port after start."""

    name = "auth"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._pool: AsyncConnectionPool | None = None
        self._redis: aioredis.Redis | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        """Check the schema, open the pool and Redis, bind and start the server.

        Raises:
            ConfigError: no internal token, no database or Redis URL, or the port is taken.
            MigrationError: the auth database lacks migrations.
            UnavailableError: PostgreSQL or Redis cannot be reached.
        """
        settings = self.settings
        server = create_server(self.name, settings.internal_token, self._health)
        settings.require("auth_database_url", "redis_url")
        assert settings.auth_database_url and settings.redis_url
        url = settings.auth_database_url
        await require_schema(url, "auth")
        try:
            self._pool = async_pool(url, name="auth", max_size=POOL_MAX_SIZE)
            await open_pool(self._pool, url)
            self._redis = await connect_redis(settings.redis_url)
            servicer = AuthServicer(self._pool, self._redis,
                                    ProjectDefaults.from_settings(settings))
            auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
            self.port = bind(server, settings.auth_listen, self.name)
            await server.start()
        except BaseException:
            await self._close_clients()
            raise
        self._server = server
        host = settings.auth_listen.rsplit(":", 1)[0]
        logger.info("auth: serving gRPC on %s:%d", host, self.port)

    async def wait(self) -> None:
        """Return once ``stop`` ran: gRPC serves from its own threads, nothing here can die."""
        # Not server.wait_for_termination(): cancelling that (as run() does on SIGTERM)
        # cancels grpc's own shutdown future, and the graceful stop then fails.
        await self._stopped.wait()

    async def stop(self) -> None:
        """Let in-flight calls finish (up to a grace period), then close the pool and Redis."""
        if self._server is not None:
            await self._server.stop(STOP_GRACE_SECONDS)
        await self._close_clients()
        self._stopped.set()

    async def _close_clients(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _health(self) -> dict[str, str]:
        return {"postgres": await postgres_health(self._pool),
                "redis": await redis_health(self._redis)}
