"""One gRPC channel to one daemon: the internal token on every call, errors rebuilt.

``DaemonClient`` is the base of the typed clients (``AuthClient``, ``IngestClient``,
``QueryClient``): it owns the channel, the daemon's stub and its health check. ``call(method,
request)`` raises the same ``LedgerError`` the server raised; code above ``rpc/`` uses the
typed methods, which take and return core models, and never sees a message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import grpc

from ledger.core.rpc_models import DaemonHealth
from ledger.proto import health_pb2, health_pb2_grpc
from ledger.rpc import convert
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


class DaemonClient:
    """A channel to one daemon. Create at start, ``await close()`` at shutdown.

    Subclasses name their ``target`` (the daemon) and ``stub_type``; ``stub`` is public for
    the RPC-level tests, which exercise the wire itself. It is typed ``Any`` on purpose: the
    generated stubs type their calls as synchronous, and the typed methods are the API.
    """

    target: str
    stub_type: ClassVar[Any]

    def __init__(self, addr: str, token: str, *, timeout: float = 10.0) -> None:
        self.addr = addr
        self.timeout = timeout
        self._metadata = ((TOKEN_KEY, token),)
        self.channel = grpc.aio.insecure_channel(addr, options=_OPTIONS)
        self.stub: Any = type(self).stub_type(self.channel)
        self._health = health_pb2_grpc.HealthServiceStub(self.channel)

    async def call(
        self,
        method: Callable[..., Awaitable[Resp]],
        request: Any,
        *,
        timeout: float | None = None,
    ) -> Resp:
        """``method(request)`` with the token; a failed call raises its ``LedgerError``."""
        try:
            return await method(request, metadata=self._metadata,
                                timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, self.target) from exc

    async def check_health(self, timeout: float = 2.0) -> DaemonHealth:
        """The daemon's own health report."""
        answer = await self.call(self._health.GetHealth, health_pb2.GetHealthRequest(),
                                 timeout=timeout)
        return convert.health_from_proto(answer)

    async def close(self) -> None:
        await self.channel.close(grace=None)


class HealthClient(DaemonClient):
    """Only the health check, for a daemon named at run time (the supervisor's probe)."""

    stub_type = health_pb2_grpc.HealthServiceStub

    def __init__(self, target: str, addr: str, token: str, *, timeout: float = 10.0) -> None:
        self.target = target
        super().__init__(addr, token, timeout=timeout)
