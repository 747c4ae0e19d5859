"""Session RPCs of ``AuthService`` (refresh tokens), mixed into ``AuthServicer``.

Kept apart from the servicer of accounts, projects and keys; the rules live in
``ledger.core.sessions``. Access tokens are not signed here: gateways sign and verify them
with ``LEDGER_JWT_SECRET``, so that checking one costs no RPC.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc
import psycopg
import redis.asyncio as aioredis

from ledger.core import accounts, sessions
from ledger.errors import InvalidInputError
from ledger.proto import auth_pb2
from ledger.rpc import convert

Context = grpc.aio.ServicerContext[Any, Any]


class SessionsServicerMixin:
    """CreateSession, RefreshSession, RevokeSession, RevokeAccountSessions.

    The class it is mixed into provides ``_conn()`` (an auth-database connection that turns
    outages into ``UnavailableError``) and ``_redis``.
    """

    _redis: aioredis.Redis

    def _conn(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        raise NotImplementedError  # provided by AuthServicer

    async def _session_proto(self, conn: psycopg.AsyncConnection[Any],
                             session: sessions.Session) -> auth_pb2.Session:
        account = await accounts.get_account(conn, session.account_id)
        return auth_pb2.Session(
            account=convert.account_to_proto(account), refresh_token=session.refresh_token,
            session_id=session.session_id, refresh_expires_at=session.expires_at.isoformat())

    async def CreateSession(
        self, request: auth_pb2.CreateSessionRequest, context: Context
    ) -> auth_pb2.CreateSessionResponse:
        if not request.account_id:
            raise InvalidInputError("account_id is required")
        async with self._conn() as conn:
            session = await sessions.create_session(conn, request.account_id)
            return auth_pb2.CreateSessionResponse(
                session=await self._session_proto(conn, session))

    async def RefreshSession(
        self, request: auth_pb2.RefreshSessionRequest, context: Context
    ) -> auth_pb2.RefreshSessionResponse:
        async with self._conn() as conn:
            session = await sessions.rotate(conn, self._redis, request.refresh_token)
            return auth_pb2.RefreshSessionResponse(
                session=await self._session_proto(conn, session))

    async def RevokeSession(
        self, request: auth_pb2.RevokeSessionRequest, context: Context
    ) -> auth_pb2.RevokeSessionResponse:
        async with self._conn() as conn:
            account_id, session_id = await sessions.revoke(conn, self._redis,
                                                           request.refresh_token)
        return auth_pb2.RevokeSessionResponse(account_id=account_id, session_id=session_id)

    async def RevokeAccountSessions(
        self, request: auth_pb2.RevokeAccountSessionsRequest, context: Context
    ) -> auth_pb2.RevokeAccountSessionsResponse:
        if not request.account_id:
            raise InvalidInputError("account_id is required")
        async with self._conn() as conn:
            revoked = await sessions.revoke_account(
                conn, self._redis, request.account_id,
                keep_session=request.keep_session_id or None)
        return auth_pb2.RevokeAccountSessionsResponse(revoked=revoked)
