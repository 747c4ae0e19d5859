"""A gRPC aio server with the internal-token interceptor and the health services installed.

Two health services: Ledger's own ``ledger.v1.HealthService/GetHealth`` (token required; the
daemon's dependency checks, for ``ledger up`` and the gateway's ``/health/deep``) and the
standard ``grpc.health.v1.Health/Check`` (no token; SERVING while the server answers), which is
what Kubernetes' ``grpc:`` probes and ``grpc_health_probe`` speak. The standard one does not
report dependencies on purpose: a PostgreSQL outage must not take every daemon out of its
Service, or the gateway could no longer answer 503s that name what is down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health_pb2 as std_health_pb2
from grpc_health.v1 import health_pb2_grpc as std_health_pb2_grpc

from ledger import __version__
from ledger.errors import ConfigError
from ledger.proto import health_pb2, health_pb2_grpc
from ledger.rpc.interceptors import CallObserver, InternalTokenInterceptor

HealthCheck = Callable[[], Awaitable[dict[str, str]]]

#: Calls a daemon serves at once; more are refused at once with RESOURCE_EXHAUSTED (the gateway
#: answers 503) rather than queued without bound in the daemon's memory.
MAX_CONCURRENT_RPCS = 1000


class HealthServicer(health_pb2_grpc.HealthServiceServicer):
    """Answers GetHealth with the daemon's dependency checks."""

    def __init__(self, daemon: str, checks: HealthCheck) -> None:
        self._daemon = daemon
        self._checks = checks

    async def GetHealth(
        self,
        request: health_pb2.GetHealthRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> health_pb2.GetHealthResponse:
        checks = await self._checks()
        return health_pb2.GetHealthResponse(
            daemon=self._daemon, version=__version__, checks=checks,
            healthy=all(v == "ok" for v in checks.values()),
        )


class StandardHealthServicer(std_health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """``grpc.health.v1.Health/Check``: SERVING for the whole server and any service name.

    Kubernetes sends the probe's ``service`` field (``liveness``, ``readiness``); both mean
    "does this process serve gRPC", so every name gets the same answer.
    """

    async def Check(
        self,
        request: std_health_pb2.HealthCheckRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> std_health_pb2.HealthCheckResponse:
        return std_health_pb2.HealthCheckResponse(
            status=std_health_pb2.HealthCheckResponse.SERVING)


def create_server(daemon: str, token: str | None, checks: HealthCheck, *,
                  max_concurrent_rpcs: int = MAX_CONCURRENT_RPCS,
                  observe: CallObserver | None = None,
                  also_accepted: Sequence[str] = ()) -> grpc.aio.Server:
    """The server, not yet bound. ``token`` is required: no daemon runs without it.

    ``observe`` is told of every finished call (the daemon's request metrics);
    ``also_accepted`` are further tokens taken while a new one is rolled out
    (``LEDGER_INTERNAL_TOKENS_ACCEPTED``).
    """
    if not token:
        raise ConfigError("LEDGER_INTERNAL_TOKEN is not set: every daemon needs the same token"
                          " (`ledger up` generates one)")
    server = grpc.aio.server(
        interceptors=[InternalTokenInterceptor(token, observe, also_accepted=also_accepted)],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )
    health_pb2_grpc.add_HealthServiceServicer_to_server(HealthServicer(daemon, checks), server)
    std_health_pb2_grpc.add_HealthServicer_to_server(StandardHealthServicer(), server)
    return server


def port_in_use(listen: str) -> bool:
    """Whether something already listens on ``listen`` (HOST:PORT), found by binding it once.

    gRPC's C core logs its own "Failed to add port" line on stderr before it returns 0;
    asking first lets a busy port be one clear error and nothing else.
    """
    import errno
    import socket

    host, _, port = listen.rpartition(":")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE)[0]
    except (OSError, ValueError):
        return False  # an address gRPC will refuse and explain itself
    with socket.socket(family, kind, proto) as probe:
        # As gRPC binds: a port left in TIME_WAIT by a stopped daemon is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def bind(server: grpc.aio.Server, listen: str, daemon: str) -> int:
    """Bind ``listen`` (HOST:PORT, port 0 for any); return the port, or a clear error."""
    if not listen.endswith(":0") and port_in_use(listen):
        raise ConfigError(
            f"cannot listen on {listen} for {daemon}: the port is in use (another `ledger serve"
            f" {daemon}` or `ledger up`?); stop it, or set LEDGER_{daemon.upper()}_LISTEN to"
            " another HOST:PORT")
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError as exc:
        port = 0
        cause: Exception | None = exc
    else:
        cause = None
    if port == 0 and not listen.endswith(":0"):
        raise ConfigError(
            f"cannot listen on {listen} for {daemon}: the port is in use or the address is wrong"
            f" (set LEDGER_{daemon.upper()}_LISTEN to another HOST:PORT)"
        ) from cause
    return int(port)
