"""The gateway's FastAPI app: ``create_app(settings)`` and its lifespan.

The lifespan opens what the gateway holds for its whole life — one Redis client, one gRPC
client per daemon, the key validator and its revocation listener — and closes it at shutdown.
Tests drive the app in process (``httpx.ASGITransport`` inside
``app.router.lifespan_context(app)``); ``GatewayDaemon`` serves it with uvicorn.

Routers come from ``ROUTER_MODULES``: each module exposes ``router`` (and optionally
``DOC_MODELS``, models that only ``openapi_extra`` mentions, and ``LEAN_ROUTES``, Starlette
routes served ahead of FastAPI's stack, see ``edge/hot_paths.py``). Cross-cutting concerns
are added with ``app.add_middleware`` / ``app.add_exception_handler`` only: the lean routes get
them from there.
Adding a router is one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from redis.exceptions import RedisError

from ledger import __version__, bus
from ledger.config import Settings, masked
from ledger.daemons.gateway.edge import hot_paths
from ledger.daemons.gateway.edge.body_limit import BodyLimitMiddleware
from ledger.daemons.gateway.edge.breaker import CircuitBreaker, probe_when_due
from ledger.daemons.gateway.edge.key_cache import (
    AUTH_TIMEOUT_SECONDS,
    FAILURE_LIMIT,
    KeyCache,
    KeyValidator,
)
from ledger.daemons.gateway.edge.rate_limits import RateLimiter
from ledger.daemons.gateway.live.routes import open_live
from ledger.daemons.gateway.routes import responses
from ledger.daemons.gateway.routes.ingest_batcher import IngestBatcher
from ledger.daemons.gateway.routes.metrics import Metrics, MetricsMiddleware
from ledger.daemons.gateway.schemas.ingest import ErrorResponse
from ledger.daemons.gateway.state import Gateway
from ledger.errors import UnavailableError
from ledger.rpc.alerts_client import AlertsClient
from ledger.rpc.auth_client import AuthClient
from ledger.rpc.ingest_client import IngestClient
from ledger.rpc.query_client import QueryClient

ROUTER_MODULES: tuple[str, ...] = (
    "ledger.daemons.gateway.routes.health",
    "ledger.daemons.gateway.routes.metrics",
    "ledger.daemons.gateway.routes.ingest",
    "ledger.daemons.gateway.routes.otlp",
    "ledger.daemons.gateway.live.routes",
    "ledger.daemons.gateway.live.preferences",
    "ledger.daemons.gateway.routes.accounts",
    "ledger.daemons.gateway.routes.projects",
    "ledger.daemons.gateway.routes.logs",
    "ledger.daemons.gateway.routes.errors",
    "ledger.daemons.gateway.routes.web",
    "ledger.daemons.gateway.routes.alerts",
    "ledger.daemons.gateway.routes.grouping",
    "ledger.daemons.gateway.routes.sentry",
    "ledger.daemons.gateway.routes.project_metrics",
)

SUBSCRIBE_TIMEOUT_SECONDS = 5.0
#: gRPC deadline of a read; the query daemon's statement timeout is below it.
QUERY_DEADLINE_SECONDS = 5.0
# FastAPI's built-in OpenTelemetry looks up its providers on every request (~4% of the hot
# path, measured) and would log exception texts; Ledger exposes its own /metrics instead.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False,
                                 "auto_configure": False}
DESCRIPTION = """Ledger: self-hosted logging and error tracking.

Send logs with an API key (`X-API-Key: ledger_…` or `Authorization: Bearer ledger_…`).
Errors are `{"detail": "..."}`; request bodies may be gzip (`Content-Encoding: gzip`)."""


def create_app(
    settings: Settings,
    *,
    breaker: CircuitBreaker | None = None,
    rate_windows: tuple[int, int] = (60, 3600),
    auth_failure_limit: int = FAILURE_LIMIT,
) -> FastAPI:
    """The gateway app; nothing connects until its lifespan starts.

    Args:
        settings: needs ``redis_url`` and ``internal_token``; daemon addresses from it.
        breaker: the circuit breaker around auth (tests pass one with a short cooldown).
        rate_windows: lengths in seconds of the "minute" and "hour" windows (tests shorten).
        auth_failure_limit: refused checks of one key id from one address before a 429.
    """
    metrics = Metrics()
    breaker = breaker or CircuitBreaker("auth")
    metrics.breaker_state = lambda: breaker.state

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _open_gateway(settings, metrics, breaker, rate_windows,
                                 auth_failure_limit) as gateway, open_live(gateway) as live:
            app.state.gateway = gateway
            app.state.live = live  # the SSE hub (live/routes.py)
            metrics.sse_clients = lambda: len(live.hub.subscriptions)
            yield

    app = FastAPI(title="Ledger", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url="/docs", redoc_url=None, telemetry=NO_TELEMETRY)
    app.state.metrics = metrics
    modules = [importlib.import_module(name) for name in ROUTER_MODULES]
    for module in modules:
        app.include_router(module.router)
    doc_models: list[type[BaseModel]] = [ErrorResponse]
    for module in modules:
        doc_models.extend(getattr(module, "DOC_MODELS", ()))
    app.openapi = _openapi(app, doc_models)  # type: ignore[method-assign]
    responses.install(app)
    lean = [route for module in modules for route in getattr(module, "LEAN_ROUTES", ())]
    app.add_middleware(BodyLimitMiddleware, own_caps=lean)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every status
    hot_paths.install(app, lean)  # after the concerns above: the lean routes get them all
    return app


@contextlib.asynccontextmanager
async def _open_gateway(
    settings: Settings,
    metrics: Metrics,
    breaker: CircuitBreaker,
    rate_windows: tuple[int, int],
    auth_failure_limit: int,
) -> AsyncIterator[Gateway]:
    settings.require("redis_url", "internal_token")
    token = str(settings.internal_token)
    redis = bus.client(str(settings.redis_url))
    auth = AuthClient(settings.auth_addr, token)
    ingest = IngestClient(settings.ingest_addr, token)
    # Reads fail fast on a hung query daemon: a shorter deadline than the other daemons', and
    # after a few calls without an answer the breaker refuses at once (503) until a probe
    # gets through.
    query_breaker = CircuitBreaker("query", failure_threshold=3)
    metrics.query_breaker_state = lambda: query_breaker.state
    query = QueryClient(settings.query_addr, token, timeout=QUERY_DEADLINE_SECONDS,
                        guard=query_breaker)
    alerts = AlertsClient(settings.alerts_addr, token)
    keys = KeyValidator(redis, auth, KeyCache(settings.gateway_key_cache_seconds), breaker,
                        metrics, failure_limit=auth_failure_limit)
    gateway = Gateway(
        settings=settings, redis=redis, auth=auth, ingest=ingest, query=query, keys=keys,
        limiter=RateLimiter(redis, minute_seconds=rate_windows[0], hour_seconds=rate_windows[1]),
        metrics=metrics, batcher=IngestBatcher(ingest), alerts=alerts)
    try:
        try:
            await redis.ping()
        except (RedisError, OSError) as exc:
            raise UnavailableError(
                f"the gateway cannot reach Redis at {masked(settings.redis_url)} ({exc}):"
                " is it running? is LEDGER_REDIS_URL right?") from exc
        gateway.tasks.append(asyncio.create_task(keys.listen_revocations(),
                                                 name="gateway-key-revocations"))
        gateway.tasks.append(asyncio.create_task(
            probe_when_due(breaker, lambda: _probe_auth(auth)), name="gateway-auth-probe"))
        try:
            await asyncio.wait_for(keys.subscribed.wait(), SUBSCRIBE_TIMEOUT_SECONDS)
        except TimeoutError:
            raise UnavailableError("the gateway could not subscribe to key revocations in"
                                   " Redis within 5 s") from None
        yield gateway
    finally:
        gateway.closing.set()
        for task in gateway.tasks:
            task.cancel()
        await asyncio.gather(*gateway.tasks, return_exceptions=True)
        await gateway.batcher.close()
        for client in (auth, ingest, query):
            await client.close()
        await alerts.close()
        await redis.aclose()


async def _probe_auth(auth: AuthClient) -> None:
    """The breaker's probe: auth answers and can reach its database."""
    answer = await auth.check_health(timeout=AUTH_TIMEOUT_SECONDS)
    if not answer.healthy:
        raise UnavailableError(f"auth answers but is unhealthy: {answer.checks}")


def _openapi(app: FastAPI, doc_models: list[type[BaseModel]]) -> Callable[[], dict[str, Any]]:
    """FastAPI's document, plus the body models of raw-bytes handlers and our 422 shape."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        _, definitions = models_json_schema(
            [(model, "validation") for model in doc_models],
            ref_template="#/components/schemas/{model}")
        for name, definition in definitions.get("$defs", {}).items():
            components.setdefault(name, definition)
        _use_error_response_for_422(schema)
        app.openapi_schema = schema
        return schema

    return build


def _use_error_response_for_422(schema: dict[str, Any]) -> None:
    """Our validation errors are ``{"detail": "..."}``, not FastAPI's list: say so."""
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response is not None:
                response["description"] = "Invalid parameters"
                response["content"] = {"application/json": {"schema": ref}}
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
