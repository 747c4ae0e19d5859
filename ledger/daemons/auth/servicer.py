"""AuthService RPCs: each one converts the request, calls ``ledger.core``, converts the answer.

``LedgerError``s raised by the core reach the caller as gRPC statuses through the server's
interceptor. A database or Redis that went away becomes ``UnavailableError`` (UNAVAILABLE), so
that the gateway's circuit breaker can tell "auth is down" from "this key is wrong".
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import psycopg
import redis.asyncio as aioredis
import redis.exceptions
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ledger.core import accounts, api_keys, projects
from ledger.daemons.auth.notification_prefs import NotificationPrefsRpcs
from ledger.daemons.auth.sessions_servicer import SessionsServicerMixin
from ledger.errors import InvalidInputError, UnavailableError
from ledger.proto import auth_pb2, auth_pb2_grpc
from ledger.rpc import convert

Context = grpc.aio.ServicerContext[Any, Any]


class AuthServicer(SessionsServicerMixin, NotificationPrefsRpcs,
                   auth_pb2_grpc.AuthServiceServicer):
    """Accounts, projects and API keys backed by the auth database and Redis."""

    def __init__(self, pool: AsyncConnectionPool, redis: aioredis.Redis,
                 defaults: projects.ProjectDefaults) -> None:
        self._pool = pool
        self._redis = redis
        self._defaults = defaults

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise UnavailableError(f"the auth database is unavailable: {exc}") from exc
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise UnavailableError(f"Redis is unavailable: {exc}") from exc

    # -- API keys -------------------------------------------------------------------------------

    async def ValidateApiKey(
        self, request: auth_pb2.ValidateApiKeyRequest, context: Context
    ) -> auth_pb2.ValidateApiKeyResponse:
        # Answer from the cache without taking a database connection when another auth copy
        # (or this one) validated the key recently.
        try:
            identity = await api_keys.cached_identity(self._redis, request.full_key)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise UnavailableError(f"Redis is unavailable: {exc}") from exc
        if identity is None:
            async with self._conn() as conn:
                identity = await api_keys.validate_key(conn, self._redis, request.full_key)
        return auth_pb2.ValidateApiKeyResponse(identity=convert.identity_to_proto(identity))

    async def CreateApiKey(
        self, request: auth_pb2.CreateApiKeyRequest, context: Context
    ) -> auth_pb2.CreateApiKeyResponse:
        async with self._conn() as conn:
            key, full_key = await api_keys.create_key(
                conn, request.project_id, request.name, list(request.scopes),
                rate_limit_minute=request.rate_limit_minute or None,
                rate_limit_hour=request.rate_limit_hour or None,
            )
        return auth_pb2.CreateApiKeyResponse(key=convert.api_key_to_proto(key), full_key=full_key)

    async def ListApiKeys(
        self, request: auth_pb2.ListApiKeysRequest, context: Context
    ) -> auth_pb2.ListApiKeysResponse:
        async with self._conn() as conn:
            keys = await api_keys.list_keys(conn, request.project_id)
        return auth_pb2.ListApiKeysResponse(keys=[convert.api_key_to_proto(k) for k in keys])

    async def RevokeApiKey(
        self, request: auth_pb2.RevokeApiKeyRequest, context: Context
    ) -> auth_pb2.RevokeApiKeyResponse:
        async with self._conn() as conn:
            key = await api_keys.revoke_key(conn, self._redis, request.key_id,
                                            project_id=request.project_id or None,
                                            account_id=request.account_id or None)
        return auth_pb2.RevokeApiKeyResponse(key=convert.api_key_to_proto(key))

    # -- projects -------------------------------------------------------------------------------

    async def CreateProject(
        self, request: auth_pb2.CreateProjectRequest, context: Context
    ) -> auth_pb2.CreateProjectResponse:
        if not request.account_id:
            raise InvalidInputError("account_id is required: the account that owns the project")
        async with self._conn() as conn:
            project = await projects.create_project(
                conn, account_id=request.account_id, name=request.name,
                slug=request.slug or None, environment=request.environment or "production",
                defaults=self._defaults,
            )
        return auth_pb2.CreateProjectResponse(project=convert.project_to_proto(project))

    async def ListProjects(
        self, request: auth_pb2.ListProjectsRequest, context: Context
    ) -> auth_pb2.ListProjectsResponse:
        async with self._conn() as conn:
            found = await projects.list_projects(conn, request.account_id or None)
        return auth_pb2.ListProjectsResponse(
            projects=[convert.project_to_proto(p) for p in found])

    async def GetProject(
        self, request: auth_pb2.GetProjectRequest, context: Context
    ) -> auth_pb2.GetProjectResponse:
        async with self._conn() as conn:
            project = await projects.get_project(conn, request.ref)
        return auth_pb2.GetProjectResponse(project=convert.project_to_proto(project))

    async def UpdateProject(
        self, request: auth_pb2.UpdateProjectRequest, context: Context
    ) -> auth_pb2.UpdateProjectResponse:
        r = request
        async with self._conn() as conn:
            project = await projects.update_project(
                conn, self._redis, r.ref,
                name=r.name if r.HasField("name") else None,
                environment=r.environment if r.HasField("environment") else None,
                retention_days=r.retention_days if r.HasField("retention_days") else None,
                daily_quota=r.daily_quota if r.HasField("daily_quota") else None,
                rate_limit_minute=(r.rate_limit_minute if r.HasField("rate_limit_minute")
                                   else None),
                rate_limit_hour=r.rate_limit_hour if r.HasField("rate_limit_hour") else None,
            )
        return auth_pb2.UpdateProjectResponse(project=convert.project_to_proto(project))

    # -- accounts -------------------------------------------------------------------------------

    async def RegisterAccount(
        self, request: auth_pb2.RegisterAccountRequest, context: Context
    ) -> auth_pb2.RegisterAccountResponse:
        async with self._conn() as conn:
            account = await accounts.register(conn, request.email, request.password,
                                              request.name)
        return auth_pb2.RegisterAccountResponse(account=convert.account_to_proto(account))

    async def LoginAccount(
        self, request: auth_pb2.LoginAccountRequest, context: Context
    ) -> auth_pb2.LoginAccountResponse:
        async with self._conn() as conn:
            account = await accounts.authenticate(conn, request.email, request.password)
        return auth_pb2.LoginAccountResponse(account=convert.account_to_proto(account))

    async def GetAccount(
        self, request: auth_pb2.GetAccountRequest, context: Context
    ) -> auth_pb2.GetAccountResponse:
        if bool(request.account_id) == bool(request.email):
            raise InvalidInputError("give exactly one of account_id and email")
        async with self._conn() as conn:
            if request.account_id:
                account = await accounts.get_account(conn, request.account_id)
            else:
                account = await accounts.get_account_by_email(conn, request.email)
        return auth_pb2.GetAccountResponse(account=convert.account_to_proto(account))

    async def ListAccounts(
        self, request: auth_pb2.ListAccountsRequest, context: Context
    ) -> auth_pb2.ListAccountsResponse:
        async with self._conn() as conn:
            found = await accounts.list_accounts(conn)
        return auth_pb2.ListAccountsResponse(
            accounts=[convert.account_to_proto(a) for a in found])

    async def RenameAccount(
        self, request: auth_pb2.RenameAccountRequest, context: Context
    ) -> auth_pb2.RenameAccountResponse:
        async with self._conn() as conn:
            account = await accounts.rename_account(conn, request.account_id, request.name)
        return auth_pb2.RenameAccountResponse(account=convert.account_to_proto(account))

    async def ChangeAccountPassword(
        self, request: auth_pb2.ChangeAccountPasswordRequest, context: Context
    ) -> auth_pb2.ChangeAccountPasswordResponse:
        async with self._conn() as conn:
            account = await accounts.change_password(
                conn, request.account_id, request.current_password, request.new_password)
        return auth_pb2.ChangeAccountPasswordResponse(account=convert.account_to_proto(account))
