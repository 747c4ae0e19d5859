"""``GET /api/v1/metrics/*``: rollups and cached dashboard figures of one project (DESIGN §5).

(``metrics.py`` beside this is ``GET /metrics``, the Prometheus text of the gateway itself.)

The gateway checks who may read which project (an API key with ``read``: its own; an account:
the projects it owns). A cached dashboard figure is read straight from Redis; anything else,
and a cache miss, goes with the parameters as sent to the query daemon's ``MetricsService``,
which validates them once (a 400 names the parameter), computes, caches, and answers JSON that
is passed through without decoding.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ledger import bus
from ledger.core.metrics import CACHED
from ledger.daemons.gateway.edge.access import owned_project, readable_project
from ledger.daemons.gateway.edge.principal import ApiKeyPrincipal, Principal, RequirePrincipal
from ledger.daemons.gateway.routes.logs import READ_RESPONSES, json_bytes, query_params
from ledger.daemons.gateway.state import Gateway
from ledger.rpc.metrics_client import MetricsClient

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])
require_read = RequirePrincipal("read")


def _param(name: str, description: str, enum: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if enum:
        schema["enum"] = enum
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


_PROJECT = _param("project_id", "Project id or slug (implied by an API key).")
_PERIOD = [
    _param("period", "Preset window.", ["today", "last1h", "last24h", "last7days",
                                        "last30days", "currentWeek", "currentMonth",
                                        "currentYear"]),
    _param("periodFrom", "Start, ISO-8601 (instead of period)."),
    _param("periodTo", "End, ISO-8601 (instead of period)."),
]


async def _metric(request: Request, principal: Principal, name: str) -> Response:
    gateway: Gateway = request.app.state.gateway
    params = query_params(request)
    ref = params.get("project_id")
    project = await readable_project(gateway, principal, ref)
    quota = 0
    if name == "usage":
        if isinstance(principal, ApiKeyPrincipal):
            quota = principal.identity.daily_quota
        else:
            quota = (await owned_project(gateway, principal, project.id)).daily_quota
    if name in CACHED and set(params) <= {"project_id"}:
        # A warm figure straight from Redis: one GET, no hop through the query daemon (which
        # computes and caches it on a miss, and checks the parameters).
        hit = await gateway.redis.get(bus.metric_cache(project.id, name))
        if hit is not None:
            response = json_bytes(hit if isinstance(hit, bytes) else hit.encode(), principal)
            response.headers["X-Ledger-Cache"] = "hit"
            return response
    # A stub is a few bound callables over the query daemon's one channel: cheap per request.
    answer = await MetricsClient(gateway.query).get_metric(project.id, name, params,
                                                           daily_quota=quota)
    response = json_bytes(answer.json, principal)
    response.headers["X-Ledger-Cache"] = "hit" if answer.cached else "miss"
    return response


@router.get("/aggregated", summary="Hourly or daily rollups", responses=READ_RESPONSES,
            openapi_extra={"parameters": [
                _PROJECT,
                {**_param("type", "Which rollup.", ["exception", "endpoint", "log_volume"]),
                 "required": True},
                _param("granularity", "Bucket size (default hourly).", ["hourly", "daily"]),
                _param("dimension", "Only these dimensions (comma-separated)."), *_PERIOD]})
async def aggregated(request: Request, principal: Principal = Depends(require_read)) -> Response:
    """Zero-filled buckets of one rollup type, each with its total and its figures per
    dimension (error type, ``METHOD route`` or ``level:log_type``)."""
    return await _metric(request, principal, "aggregated")


@router.get("/bottleneck", summary="Slowest routes", responses=READ_RESPONSES,
            openapi_extra={"parameters": [
                _PROJECT, _param("routes", "Only these routes (comma-separated)."),
                _param("statistic", "Rank by (default p95).",
                       ["min", "max", "avg", "median", "p95", "p99", "count"]),
                _param("limit", "Routes returned, 1-500 (default 20)."), *_PERIOD]})
async def bottleneck(request: Request, principal: Principal = Depends(require_read)) -> Response:
    """Routes ranked by one duration statistic over the period, and every route seen."""
    return await _metric(request, principal, "bottleneck")


@router.get("/error-rate", summary="Errors in 5-minute buckets, 24 h", responses=READ_RESPONSES,
            openapi_extra={"parameters": [_PROJECT]})
async def error_rate(request: Request, principal: Principal = Depends(require_read)) -> Response:
    """``[{timestamp, error_count, critical_count}]`` for the last 24 hours (cached)."""
    return await _metric(request, principal, "error-rate")


@router.get("/log-volume", summary="Logs per level, hourly, 7 days", responses=READ_RESPONSES,
            openapi_extra={"parameters": [_PROJECT]})
async def log_volume(request: Request, principal: Principal = Depends(require_read)) -> Response:
    """``[{timestamp, debug, info, warning, error, critical}]`` for the last 7 days (cached)."""
    return await _metric(request, principal, "log-volume")


@router.get("/top-errors", summary="Top unresolved error groups, 24 h",
            responses=READ_RESPONSES, openapi_extra={"parameters": [_PROJECT]})
async def top_errors(request: Request, principal: Principal = Depends(require_read)) -> Response:
    """The 50 unresolved groups with most events in 24 h, with an hourly trend (cached)."""
    return await _metric(request, principal, "top-errors")


@router.get("/usage", summary="Today's usage against the quota", responses=READ_RESPONSES,
            openapi_extra={"parameters": [_PROJECT]})
async def usage(request: Request, principal: Principal = Depends(require_read)) -> Response:
    """Logs accepted today (UTC) against the project's daily quota."""
    return await _metric(request, principal, "usage")
