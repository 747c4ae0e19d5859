"""AuthService RPCs for notification preferences, mixed into ``AuthServicer``.

Kept apart from the servicer so that the live feature (``ledger.daemons.gateway.live.routes``) owns
its RPCs; the servicer provides ``_conn()``, a connection of the auth database.
"""

from __future__ import annotations

import contextlib
from typing import Any

import grpc
import psycopg

from ledger.core import notification_prefs
from ledger.errors import InvalidInputError
from ledger.proto import auth_pb2
from ledger.rpc import convert

Context = grpc.aio.ServicerContext[Any, Any]


class NotificationPrefsRpcs:
    """``GetNotificationPreferences`` and ``SetNotificationPreferences``."""

    def _conn(self) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        raise NotImplementedError  # provided by AuthServicer

    async def GetNotificationPreferences(
        self, request: auth_pb2.GetNotificationPreferencesRequest, context: Context
    ) -> auth_pb2.GetNotificationPreferencesResponse:
        _require_account(request.account_id)
        async with self._conn() as conn:
            prefs = await notification_prefs.get_preferences(conn, request.account_id)
        return auth_pb2.GetNotificationPreferencesResponse(
            preferences=[convert.preference_to_proto(p) for p in prefs])

    async def SetNotificationPreferences(
        self, request: auth_pb2.SetNotificationPreferencesRequest, context: Context
    ) -> auth_pb2.SetNotificationPreferencesResponse:
        _require_account(request.account_id)
        wanted = [convert.preference_from_proto(p) for p in request.preferences]
        async with self._conn() as conn:
            prefs = await notification_prefs.set_preferences(conn, request.account_id, wanted)
        return auth_pb2.SetNotificationPreferencesResponse(
            preferences=[convert.preference_to_proto(p) for p in prefs])


def _require_account(account_id: str) -> None:
    if not account_id:
        raise InvalidInputError("account_id is required: preferences belong to an account")

