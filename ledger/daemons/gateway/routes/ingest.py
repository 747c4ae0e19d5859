"""Routes SDKs call: ingest (single, batch), queue depth, settings (DESIGN §5).

The ingest handlers read the raw body (gunzipped and capped by ``bodies.read_body``) and hand
the bytes to the ingest daemon untouched: parsing and the rules of §3 run once, there.

The two ingest routes are the hot path (DESIGN §9). The app serves them from ``LEAN_ROUTES``
ahead of FastAPI's middleware stack and dependency machinery (``edge/hot_paths.py``, which
applies every middleware and exception handler of the app to them); they authenticate with
``edge.principal.require_key``. The FastAPI routes
below run the same code and document the paths in /openapi.json. Single logs and small
batches go through the gateway's ``IngestBatcher``, which coalesces concurrent requests into
one gRPC call.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.core.events import CONSTRAINTS
from ledger.core.rpc_models import IngestResult, IngestShape
from ledger.daemons.gateway.edge.principal import (
    AUTH_RESPONSES,
    ApiKeyPrincipal,
    RequireKey,
    require_key,
)
from ledger.daemons.gateway.routes.bodies import check_json_content_type, read_body
from ledger.daemons.gateway.routes.ingest_batcher import forward_logs
from ledger.daemons.gateway.routes.responses import (
    error_response,
    json_bytes_response,
    json_response,
)
from ledger.daemons.gateway.schemas.ingest import (
    ErrorResponse,
    IngestBatchRejected,
    IngestBatchRequest,
    IngestBatchResponse,
    IngestSingleResponse,
    LogRecord,
    QueueDepthResponse,
    SettingsResponse,
)
from ledger.daemons.gateway.state import Gateway

router = APIRouter(prefix="/api/v1")


require_ingest = RequireKey("ingest")
require_read = RequireKey("read")
require_any_scope = RequireKey(None)

_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Body over the cap after decompression"},
    415: {"model": ErrorResponse, "description": "Not JSON, or a Content-Encoding other than gzip"},
}


def _request_body(schema: str, description: str) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON (optionally gzip) request body of ``schema``."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
        "parameters": [{
            "name": "Content-Encoding", "in": "header", "required": False,
            "description": "`gzip` to send a compressed body (capped after decompression).",
            "schema": {"type": "string", "enum": ["gzip", "identity"]},
        }],
    }


#: Models that only appear through ``openapi_extra``: app.py adds them to the components.
DOC_MODELS = (LogRecord, IngestBatchRequest, IngestBatchRejected)


async def _ingest(request: Request, principal: ApiKeyPrincipal,
                  shape: IngestShape) -> IngestResult:
    gateway: Gateway = request.app.state.gateway
    check_json_content_type(request)
    body = await read_body(request, gateway.settings.gateway_max_body_bytes)
    return await forward_logs(gateway, principal.identity, shape, body)


def _item_errors(response: IngestResult) -> list[dict[str, Any]]:
    return [{"index": e.index, "field": e.field, "reason": e.reason} for e in response.errors]


@router.post(
    "/ingest/single",
    tags=["ingest"],
    summary="Send one log",
    status_code=202,
    response_model=IngestSingleResponse,
    responses={400: {"model": ErrorResponse, "description": "The log is invalid"},
               **_BODY_ERRORS, **AUTH_RESPONSES},
    openapi_extra=_request_body("LogRecord", "One log record."),
)
async def ingest_single(
    request: Request, principal: ApiKeyPrincipal = Depends(require_ingest),
) -> Response:
    """Queue one log; 202 once it is safely in the queue (stored within seconds)."""
    return await _single(request, principal)


async def _single(request: Request, principal: ApiKeyPrincipal) -> Response:
    response = await _ingest(request, principal, "single")
    if response.accepted == 0:
        reason = response.errors[0] if response.errors else None
        detail = (f"{reason.field}: {reason.reason}" if reason is not None
                  else response.message or "the log is invalid")
        return error_response(400, detail, principal.rate_headers())
    return json_bytes_response({"accepted": response.accepted, "rejected": response.rejected,
                                "message": response.message or "log accepted"}, 202,
                               principal.raw_rate_headers())


@router.post(
    "/ingest/batch",
    tags=["ingest"],
    summary="Send up to 1 000 logs",
    status_code=202,
    response_model=IngestBatchResponse,
    responses={400: {
        "description": "No log of the batch is valid (per-item errors), or the body is not a"
                       " batch (detail only); nothing was queued",
        "content": {"application/json": {"schema": {"anyOf": [
            {"$ref": "#/components/schemas/IngestBatchRejected"},
            {"$ref": "#/components/schemas/ErrorResponse"}]}}}},
               **_BODY_ERRORS, **AUTH_RESPONSES},
    openapi_extra=_request_body("IngestBatchRequest", "`{\"logs\": [...]}`, 1 to 1 000 logs."),
)
async def ingest_batch(
    request: Request, principal: ApiKeyPrincipal = Depends(require_ingest),
) -> Response:
    """Queue the valid logs of a batch; invalid ones are listed by index with the reason."""
    return await _batch(request, principal)


async def _batch(request: Request, principal: ApiKeyPrincipal) -> Response:
    response = await _ingest(request, principal, "batch")
    errors = _item_errors(response)
    if response.accepted == 0:
        return error_response(400, response.message or "no log of the batch is valid",
                              principal.rate_headers(), accepted=0,
                              rejected=response.rejected, errors=errors)
    return json_bytes_response({"accepted": response.accepted, "rejected": response.rejected,
                                "errors": errors}, 202, principal.raw_rate_headers())


async def _lean_single(request: Request) -> Response:
    return await _single(request, await require_key(request, "ingest"))


async def _lean_batch(request: Request) -> Response:
    return await _batch(request, await require_key(request, "ingest"))


#: POST paths served ahead of FastAPI's stack (see the module docstring and ``edge/hot_paths.py``);
#: the FastAPI routes above run the same code and document them.
LEAN_ROUTES = (
    Route("/api/v1/ingest/single", _lean_single, methods=["POST"], include_in_schema=False),
    Route("/api/v1/ingest/batch", _lean_batch, methods=["POST"], include_in_schema=False),
)


@router.get(
    "/queue/depth",
    tags=["ingest"],
    summary="Logs of the key's project waiting to be stored",
    response_model=QueueDepthResponse,
    responses={**AUTH_RESPONSES},
)
async def queue_depth(
    request: Request, principal: ApiKeyPrincipal = Depends(require_read),
) -> Response:
    """How many accepted logs of the project are queued and not yet in the database."""
    gateway: Gateway = request.app.state.gateway
    depth = await gateway.ingest.get_queue_depth(principal.project_id)
    return json_response({"project_id": principal.project_id, "queue_depth": depth}, 200,
                         principal.rate_headers())


@router.get(
    "/settings",
    tags=["ingest"],
    summary="What an SDK needs to know about its key and the log rules",
    response_model=SettingsResponse,
    responses={**AUTH_RESPONSES},
)
async def get_settings(
    request: Request, principal: ApiKeyPrincipal = Depends(require_any_scope),
) -> Response:
    """The key's project, scopes, rate limits, daily quota, retention and the §3 rules."""
    gateway: Gateway = request.app.state.gateway
    identity = principal.identity
    return json_response({
        "project_id": identity.project_id,
        "project_name": identity.project_name,
        "project_slug": identity.project_slug,
        "project_dsn_id": identity.project_dsn_id,
        "scopes": list(identity.scopes),
        "rate_limit_minute": identity.rate_limit_minute,
        "rate_limit_hour": identity.rate_limit_hour,
        "daily_quota": identity.daily_quota,
        "retention_days": identity.retention_days,
        "max_body_bytes": gateway.settings.gateway_max_body_bytes,
        "constraints": dict(CONSTRAINTS),
    }, 200, principal.rate_headers())
