"""``GET /health`` (the process answers) and ``GET /health/deep`` (everything it needs answers).

Deep checks run concurrently, each with a short timeout: Redis directly, and every gRPC daemon
through its ``GetHealth`` — which reports that daemon's own dependencies (auth: the auth
database; ingest and query: the logs database and Redis), so both databases are covered.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from starlette.responses import Response

from ledger import __version__
from ledger.daemons.checks import redis_health
from ledger.daemons.gateway.routes.responses import json_response
from ledger.daemons.gateway.schemas.ingest import DeepHealthResponse, HealthResponse
from ledger.daemons.gateway.state import Gateway
from ledger.errors import LedgerError
from ledger.rpc.channel import DaemonClient

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0

router = APIRouter(tags=["health"])


@router.get("/health", summary="The gateway process is up", response_model=HealthResponse)
async def health() -> Response:
    """Always 200 while the process serves HTTP; no dependency is checked."""
    return json_response({"status": "ok", "version": __version__})


async def _check_redis(gateway: Gateway) -> dict[str, str]:
    return {"redis": await redis_health(gateway.redis)}


async def _check_daemon(client: DaemonClient) -> dict[str, str]:
    try:
        answer = await client.check_health(timeout=CHECK_TIMEOUT_SECONDS)
    except LedgerError as exc:
        logger.info("health: %s: %s", client.target, exc.message)
        return {client.target: f"unavailable at {client.addr}"}
    checks = {f"{client.target}.{name}": value for name, value in sorted(answer.checks.items())}
    checks[client.target] = "ok" if answer.healthy else "unhealthy"
    return checks


@router.get(
    "/health/deep",
    summary="Redis, both databases and every daemon answer",
    response_model=DeepHealthResponse,
    responses={503: {"model": DeepHealthResponse, "description": "At least one check failed"}},
)
async def deep_health(request: Request) -> Response:
    """200 when every check is ``ok``, else 503; ``checks`` says what failed."""
    gateway: Gateway = request.app.state.gateway
    results = await asyncio.gather(
        _check_redis(gateway),
        *(_check_daemon(c) for c in (gateway.auth, gateway.ingest, gateway.query)))
    checks: dict[str, str] = {}
    for result in results:
        checks.update(result)
    healthy = all(value == "ok" for value in checks.values())
    return json_response(
        {"status": "ok" if healthy else "unavailable", "version": __version__, "checks": checks},
        200 if healthy else 503)
