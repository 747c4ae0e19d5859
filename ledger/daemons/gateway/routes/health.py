"""``GET /health`` (the process answers) and ``GET /health/deep`` (everything it needs answers).

Deep checks run concurrently, each with a short timeout: Redis directly, and every gRPC daemon
through its ``GetHealth`` — which reports that daemon's own dependencies (auth: the auth
database; ingest and query: the logs database and Redis), so both databases are covered.
Each daemon's own state (it answered) is told apart from its dependencies': during a
PostgreSQL outage the daemons are ``ok`` and their ``postgres`` checks are not.

Anyone may ask whether the stack is healthy (``status``); what failed, where, and the circuit
breakers' states are for an operator, who sends the internal token (``X-Ledger-Internal-Token``,
the value of ``LEDGER_INTERNAL_TOKEN``): error texts name hosts and databases.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from starlette.responses import Response

from ledger import __version__
from ledger.daemons.checks import redis_health
from ledger.daemons.gateway.edge.breaker import CircuitBreaker
from ledger.daemons.gateway.routes.responses import json_response
from ledger.daemons.gateway.schemas.ingest import DeepHealthResponse, HealthResponse
from ledger.daemons.gateway.state import Gateway
from ledger.errors import LedgerError
from ledger.rpc.channel import DaemonClient
from ledger.rpc.interceptors import token_accepted

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0  # per daemon; each daemon's own checks fit in 1 s (checks.py)
OPERATOR_HEADER = "x-ledger-internal-token"

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
    checks[client.target] = "ok"  # it answered; its dependencies speak for themselves
    return checks


def is_operator(request: Request, gateway: Gateway) -> bool:
    """Whether the caller sent the internal token (and may see internal details)."""
    settings = gateway.settings
    tokens = tuple(t for t in (str(settings.internal_token or ""),
                               *settings.tokens_also_accepted()) if t)
    return token_accepted(request.headers.get(OPERATOR_HEADER, ""), tokens)


@router.get(
    "/health/deep",
    summary="Redis, both databases and every daemon answer",
    response_model=DeepHealthResponse,
    response_model_exclude_none=True,
    responses={503: {"model": DeepHealthResponse, "description": "At least one check failed"}},
)
async def deep_health(request: Request) -> Response:
    """200 when every check is ``ok``, else 503.

    With ``X-Ledger-Internal-Token`` (an operator), ``checks`` says what failed and
    ``breakers`` the state of each circuit breaker; without it, only ``status``.
    """
    gateway: Gateway = request.app.state.gateway
    results = await asyncio.gather(
        _check_redis(gateway),
        *(_check_daemon(c) for c in (gateway.auth, gateway.ingest, gateway.query)))
    checks: dict[str, str] = {}
    for result in results:
        checks.update(result)
    healthy = all(value == "ok" for value in checks.values())
    body: dict[str, object] = {"status": "ok" if healthy else "unavailable",
                               "version": __version__}
    if is_operator(request, gateway):
        body["checks"] = checks
        breakers = [gateway.keys.breaker, gateway.query.guard]
        body["breakers"] = {b.name: b.state.value for b in breakers
                            if isinstance(b, CircuitBreaker)}
    return json_response(body, 200 if healthy else 503)
