"""``POST /v1/logs``: OpenTelemetry logs over OTLP/HTTP, protobuf or JSON (DESIGN §5).

The request is decoded (protobuf in ``ledger.rpc.otlp``, JSON in ``ledger.core.otlp``) and
mapped to native records here in the gateway, which has CPU to spare where ingest is the
bottleneck; the records then take the native batch path unchanged: one validation of §3 in
ingest, the same queue, exactly-once writers and notifications. What ingest rejects comes back
as an OTLP ``partial_success`` (200) that counts the records and says why.

Errors keep Ledger's ``{"detail": ...}`` body (OTLP suggests a ``google.rpc.Status``; exporters
only read the status code and ``Retry-After``, which are OTLP's: 400 for an undecodable body,
413 over 1 000 records or the body cap, 429/503 with ``Retry-After``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.core import otlp
from ledger.core.events import InvalidBody, parse_json_body
from ledger.core.rpc_models import IngestResult
from ledger.daemons.gateway.edge.principal import (
    AUTH_RESPONSES,
    ApiKeyPrincipal,
    RequireKey,
    require_key,
)
from ledger.daemons.gateway.routes.bodies import read_body
from ledger.daemons.gateway.routes.ingest_batcher import forward_logs
from ledger.daemons.gateway.routes.responses import UnsupportedMediaTypeError
from ledger.daemons.gateway.schemas.ingest import ErrorResponse
from ledger.daemons.gateway.schemas.otlp import OtlpExportLogsResponse
from ledger.daemons.gateway.state import Gateway
from ledger.errors import PayloadTooLargeError
from ledger.rpc.otlp import decode_logs_request, encode_logs_response

router = APIRouter()

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: Item errors spelled out in a partial-success message; the rest are counted.
MAX_REASONS = 5

require_ingest = RequireKey("ingest")


def _media(request: Request) -> str:
    content_type = request.headers.get("content-type")
    if not content_type:
        return JSON  # as the native routes take a body without a Content-Type
    media = content_type.split(";", 1)[0].strip().lower()
    if media in (PROTOBUF, "application/protobuf", "application/vnd.google.protobuf"):
        return PROTOBUF
    if media == JSON:
        return JSON
    raise UnsupportedMediaTypeError(
        f"Content-Type {media!r} is not supported here: send OTLP logs as {PROTOBUF} or {JSON}")


def _decode(media: str, body: bytes) -> list[otlp.OtlpResource]:
    if media == PROTOBUF:
        return decode_logs_request(body)
    try:
        parsed = parse_json_body(body)
    except InvalidBody as exc:
        raise otlp.OtlpDecodeError(exc.reason) from exc
    return otlp.decode_json(parsed)


def _reasons(response: IngestResult, paths: list[str]) -> str:
    if not response.rejected:
        return ""
    parts = []
    for error in response.errors[:MAX_REASONS]:
        where = paths[error.index] if 0 <= error.index < len(paths) else f"record {error.index}"
        parts.append(f"{where}: {error.field}: {error.reason}")
    more = response.rejected - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return (f"rejected {response.rejected} of {len(paths)} log records: " + "; ".join(parts))


def _answer(media: str, rejected: int, message: str, headers: dict[str, str]) -> Response:
    if media == PROTOBUF:
        return Response(encode_logs_response(rejected, message), 200, headers, PROTOBUF)
    content: dict[str, Any] = {}
    if rejected or message:
        content["partialSuccess"] = {"rejectedLogRecords": str(rejected),
                                     "errorMessage": message}
    return Response(orjson.dumps(content), 200, headers, JSON)


async def _export(request: Request, principal: ApiKeyPrincipal) -> Response:
    gateway: Gateway = request.app.state.gateway
    media = _media(request)
    body = await read_body(request, gateway.settings.gateway_max_body_bytes)
    resources = _decode(media, body)
    count = otlp.count_records(resources)
    headers = principal.rate_headers()
    if count > otlp.MAX_RECORDS:
        raise PayloadTooLargeError(
            f"{count} log records in one request; at most {otlp.MAX_RECORDS} are accepted:"
            " lower the exporter's batch size (OTEL_BLRP_MAX_EXPORT_BATCH_SIZE)")
    if count == 0:
        return _answer(media, 0, "", headers)
    records = otlp.to_records(resources, received_ns=time.time_ns())
    response = await forward_logs(gateway, principal.identity, "batch",
                                  orjson.dumps({"logs": records}))
    return _answer(media, response.rejected, _reasons(response, otlp.record_paths(resources)),
                   headers)


_REQUEST_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "An OTLP `ExportLogsServiceRequest`, as the OpenTelemetry SDKs' and Collector's"
            " `otlphttp` exporters send it: protobuf, or OTLP/JSON (lowerCamelCase fields,"
            " hex trace and span ids, 64-bit integers as strings). At most"
            f" {otlp.MAX_RECORDS} log records; gzip with `Content-Encoding: gzip`."),
        "content": {
            PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            # null is an empty list or object, as the protobuf JSON mapping reads it
            # (core/otlp.py).
            JSON: {"schema": {"type": "object", "properties": {
                "resourceLogs": {"anyOf": [
                    {"type": "array",
                     "items": {"anyOf": [{"type": "object"}, {"type": "null"}]}},
                    {"type": "null"}]}}}},
        },
    },
}


@router.post(
    "/v1/logs",
    tags=["opentelemetry"],
    summary="Send OpenTelemetry logs (OTLP/HTTP)",
    response_model=OtlpExportLogsResponse,
    responses={
        200: {"description": "Accepted; refused records are counted in `partialSuccess`",
              "content": {PROTOBUF: {"schema": {"type": "string", "format": "binary"}}}},
        400: {"model": ErrorResponse, "description": "Not an OTLP logs request"},
        413: {"model": ErrorResponse,
              "description": f"Over {otlp.MAX_RECORDS} records, or the body over the cap"},
        415: {"model": ErrorResponse, "description": "Neither protobuf nor JSON, or not gzip"},
        **AUTH_RESPONSES,
    },
    openapi_extra=_REQUEST_DOC,
)
async def export_logs(request: Request,
                      principal: ApiKeyPrincipal = Depends(require_ingest)) -> Response:
    """Queue the records of an OTLP logs export; answer OTLP's response (partial success)."""
    return await _export(request, principal)


async def _lean_export(request: Request) -> Response:
    return await _export(request, await require_key(request, "ingest"))


#: Served ahead of FastAPI's stack like the native ingest routes (``edge/hot_paths.py``).
LEAN_ROUTES = (Route("/v1/logs", _lean_export, methods=["POST"], include_in_schema=False),)
