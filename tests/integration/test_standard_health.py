"""The standard gRPC health check that Kubernetes probes speak, on a real daemon server.

``create_server`` is what every gRPC daemon uses; the probe sends no internal token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ledger.proto import health_pb2 as ledger_health_pb2
from ledger.proto import health_pb2_grpc as ledger_health_pb2_grpc
from ledger.rpc.server import bind, create_server


async def _checks() -> dict[str, str]:
    return {"postgres": "unavailable"}  # a dependency down must not fail the probe


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = create_server("auth", "probe-test-token", _checks)
    port = bind(server, "127.0.0.1:0", "auth")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
        yield chan
    await server.stop(None)


@pytest.mark.parametrize("service", ["", "liveness", "readiness"])
async def test_probe_without_token_is_serving(channel: grpc.aio.Channel, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_ledger_health_still_needs_the_token(channel: grpc.aio.Channel) -> None:
    stub = ledger_health_pb2_grpc.HealthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetHealth(ledger_health_pb2.GetHealthRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    answer = await stub.GetHealth(ledger_health_pb2.GetHealthRequest(), timeout=5,
                                  metadata=(("x-ledger-internal-token", "probe-test-token"),))
    assert not answer.healthy and answer.checks["postgres"] == "unavailable"
