"""AuthDaemon: a gRPC server over one auth-database pool and one Redis client."""

from __future__ import annotations

import logging

from ledger.core.connections import connect_redis
from ledger.core.projects import ProjectDefaults
from ledger.daemons.auth.servicer import AuthServicer
from ledger.daemons.base import GrpcDaemon
from ledger.daemons.checks import require_schema
from ledger.db.pool import async_pool, open_pool
from ledger.proto import auth_pb2_grpc
from ledger.rpc.server import bind, create_server

logger = logging.getLogger(__name__)

# In-flight calls get this long to finish after SIGTERM; then they are cancelled.
STOP_GRACE_SECONDS = 5.0
# Each uncached key check holds a connection through its bcrypt (~50 ms): allow some overlap.
POOL_MAX_SIZE = 16


class AuthDaemon(GrpcDaemon):
    """Serves ``ledger.v1.AuthService`` and health; ``port`` is the bound port after start."""

    name = "auth"
    stop_grace_seconds = STOP_GRACE_SECONDS

    async def start(self) -> None:
        """Check the schema, open the pool and Redis, bind and start the server.

        Raises:
            ConfigError: no internal token, no database or Redis URL, or the port is taken.
            MigrationError: the auth database lacks migrations.
            UnavailableError: PostgreSQL or Redis cannot be reached.
        """
        settings = self.settings
        server = create_server(self.name, settings.internal_token, self._health,
                               observe=self.observe_rpcs,
                               also_accepted=settings.tokens_also_accepted())
        settings.require("auth_database_url", "redis_url")
        assert settings.auth_database_url and settings.redis_url
        url = settings.auth_database_url
        await require_schema(url, "auth")
        try:
            self._pool = async_pool(url, name="auth", max_size=POOL_MAX_SIZE,
                                    idle_seconds=settings.db_pool_idle_seconds)
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
