"""gRPC clients: one channel per target, the internal token on every call, errors rebuilt.

``Client.call(stub_method, request)`` raises the same ``LedgerError`` the server raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from ledger.errors import LedgerError
from ledger.proto import (
    auth_pb2_grpc,
    grouping_pb2_grpc,
    health_pb2,
    health_pb2_grpc,
    ingest_pb2_grpc,
    query_pb2_grpc,
)
from ledger.rpc.interceptors import TOKEN_KEY
from ledger.rpc.status import from_rpc_error

Resp = TypeVar("Resp")

_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    # gRPC's default reconnect backoff grows to 120 s: a daemon back after an outage would stay
    # unreached for minutes (the gateway's breaker probes would keep failing). Retry often.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


class Client:
    """A channel to one daemon with its stubs. Create at start, ``await close()`` at shutdown."""

    def __init__(self, target: str, addr: str, token: str, *, timeout: float = 10.0) -> None:
        self.target = target
        self.addr = addr
        self.timeout = timeout
        self._metadata = ((TOKEN_KEY, token),)
        self.channel = grpc.aio.insecure_channel(addr, options=_OPTIONS)
        self.health = health_pb2_grpc.HealthServiceStub(self.channel)
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self.channel)
        self.query = query_pb2_grpc.QueryServiceStub(self.channel)
        self.grouping = grouping_pb2_grpc.GroupingServiceStub(self.channel)

    async def call(
        self,
        method: Callable[..., Awaitable[Resp]],
        request: Any,
        *,
        timeout: float | None = None,
    ) -> Resp:
        try:
            return await method(request, metadata=self._metadata,
                                timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, self.target) from exc

    async def check_health(self, timeout: float = 2.0) -> health_pb2.GetHealthResponse:
        return await self.call(self.health.GetHealth, health_pb2.GetHealthRequest(),
                               timeout=timeout)

    async def close(self) -> None:
        await self.channel.close(grace=None)


__all__ = ["Client", "LedgerError"]
