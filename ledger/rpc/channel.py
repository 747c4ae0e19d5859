"""One gRPC channel to one daemon: the internal token on every call, errors rebuilt.

``DaemonClient`` is the base of the typed clients (``AuthClient``, ``IngestClient``,
``QueryClient``): it owns the channel, the daemon's stub and its health check. ``call(method,
request)`` raises the same ``LedgerError`` the server raised; code above ``rpc/`` uses the
typed methods, which take and return core models, and never sees a message.

A client may be given a ``guard`` (the gateway's circuit breaker): while it refuses, calls fail
at once with ``UnavailableError`` instead of each waiting out its deadline on a hung daemon.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol, TypeVar

import grpc

from ledger.core.rpc_models import DaemonHealth
from ledger.errors import UnavailableError
from ledger.proto import health_pb2, health_pb2_grpc
from ledger.rpc import convert
from ledger.rpc.interceptors import TOKEN_KEY
from ledger.rpc.status import from_rpc_error

Resp = TypeVar("Resp")

#: Status codes that mean "the daemon did not answer" (and count against the guard).
_NO_ANSWER = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
#: Retry-After of a call the guard refused.
GUARD_RETRY_SECONDS = 5


class CallGuard(Protocol):
    """What a client asks before each call and tells after it (a circuit breaker)."""

    def allow_request(self) -> bool: ...

    def record_success(self) -> None: ...

    def record_failure(self) -> None: ...

_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    # gRPC's default reconnect backoff grows to 120 s: a daemon back after an outage would stay
    # unreached for minutes (the gateway's breaker probes would keep failing). Retry often:
    # with a 2 s cap the gateway still answered 503 for up to 1.95 s after a restarted ingest
    # was up; with 0.5 s, 0.55 s at most in four runs (bench/probe_ingest_restart.py). A
    # refused connect twice a second to a daemon that is down costs next to nothing.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]
#: For a list of addresses (``ledger up``'s ingest API processes): every call to the next
#: address that is connected, so one killed copy fails only its in-flight calls and the next
#: go to the others. Not for one address: there round-robin reconnects in the background
#: with backoff and fails calls at once meanwhile, where pick-first (the default) connects
#: when a call comes, so a daemon just restarted answers the very next call.
_SPREAD = [("grpc.lb_policy_name", "round_robin")]


def channel_options() -> list[tuple[str, int]]:
    """The options of a channel to one address (for a client's further channels)."""
    return list(_OPTIONS)


def channel_target(addr: str) -> str:
    """The gRPC target for ``addr``: one ``HOST:PORT``, or ``IP:PORT,IP:PORT,...``.

    A list becomes gRPC's static ``ipv4:``/``ipv6:`` target, which takes IP addresses only
    (the config refuses names in a list).
    """
    parts = [part.strip() for part in addr.split(",") if part.strip()]
    if len(parts) <= 1:
        return addr
    scheme = "ipv6" if parts[0].startswith("[") else "ipv4"
    return f"{scheme}:{','.join(parts)}"


class DaemonClient:
    """A channel to one daemon. Create at start, ``await close()`` at shutdown.

    Subclasses name their ``target`` (the daemon) and ``stub_type``; ``stub`` is public for
    the RPC-level tests, which exercise the wire itself. It is typed ``Any`` on purpose: the
    generated stubs type their calls as synchronous, and the typed methods are the API.
    """

    target: str
    stub_type: ClassVar[Any]

    def __init__(self, addr: str, token: str, *, timeout: float = 10.0,
                 guard: CallGuard | None = None) -> None:
        self.addr = addr
        self.timeout = timeout
        self.guard = guard
        self._metadata = ((TOKEN_KEY, token),)
        target = channel_target(addr)
        self.channel = grpc.aio.insecure_channel(
            target, options=_OPTIONS + (_SPREAD if target != addr else []))
        self.stub: Any = type(self).stub_type(self.channel)
        self._health = health_pb2_grpc.HealthServiceStub(self.channel)

    async def call(
        self,
        method: Callable[..., Awaitable[Resp]],
        request: Any,
        *,
        timeout: float | None = None,
    ) -> Resp:
        """``method(request)`` with the token; a failed call raises its ``LedgerError``.

        Raises:
            UnavailableError: the daemon did not answer, or the guard refused the call.
        """
        guard = self.guard
        if guard is not None and not guard.allow_request():
            raise UnavailableError(f"the {self.target} daemon is not answering (circuit open)",
                                   retry_after=GUARD_RETRY_SECONDS,
                                   service=f"the {self.target} daemon")
        try:
            answer = await self._call(method, request, timeout)
        except grpc.aio.AioRpcError as exc:
            if guard is not None:
                if exc.code() in _NO_ANSWER:
                    guard.record_failure()
                else:
                    guard.record_success()  # a refusal is an answer
            raise from_rpc_error(exc, self.target) from exc
        if guard is not None:
            guard.record_success()
        return answer

    async def _call(self, method: Callable[..., Awaitable[Resp]], request: Any,
                    timeout: float | None) -> Resp:
        return await method(request, metadata=self._metadata, timeout=timeout or self.timeout)

    async def check_health(self, timeout: float = 2.0) -> DaemonHealth:
        """The daemon's own health report (never refused by the guard: it is how we look)."""
        try:
            answer = await self._call(self._health.GetHealth, health_pb2.GetHealthRequest(),
                                      timeout)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, self.target) from exc
        return convert.health_from_proto(answer)

    async def close(self) -> None:
        await self.channel.close(grace=None)


class HealthClient(DaemonClient):
    """Only the health check, for a daemon named at run time (the supervisor's probe)."""

    stub_type = health_pb2_grpc.HealthServiceStub

    def __init__(self, target: str, addr: str, token: str, *, timeout: float = 10.0) -> None:
        self.target = target
        super().__init__(addr, token, timeout=timeout)
