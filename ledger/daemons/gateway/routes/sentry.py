"""The Sentry SDK protocol: ``POST /api/<number>/envelope/`` and ``/api/<number>/store/``.

Any Sentry SDK sends its events here once its DSN is ``http://<ledger key>@<host>/<number>``
(``<number>`` is the project's ``dsn_id``). The gateway turns each event into a native log
record (``ledger.core.sentry``) and hands the batch to ingest exactly like ``/ingest/batch``:
the same validation, queue, exactly-once storage, grouping, notifications, rate limits and
daily quota. The conversion runs here because ingest is the pipeline's bottleneck and the
gateway has CPU to spare (and can be scaled out).

Answers follow what the SDKs understand: ``200 {"id": "<event id>"}``; 429 and queue-full 503
with ``Retry-After`` and ``X-Sentry-Rate-Limits`` (the SDK then pauses sending); 413 for a body
over the cap; 400 naming the item and the reason for a malformed envelope. Items that are not
events (transactions, sessions, client reports, attachments...) are accepted and counted in
``ledger_sentry_items_total``, never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.core import sentry
from ledger.daemons.gateway.edge.principal import ApiKeyPrincipal, authenticate_key
from ledger.daemons.gateway.routes.bodies import read_body
from ledger.daemons.gateway.routes.ingest_batcher import forward_logs
from ledger.daemons.gateway.routes.responses import (
    error_response,
    json_response,
    ledger_error_handler,
)
from ledger.daemons.gateway.schemas.ingest import ErrorResponse
from ledger.daemons.gateway.state import Gateway
from ledger.errors import (
    AuthenticationError,
    LedgerError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitedError,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["sentry"])

MISSING_KEY = ("missing credentials: configure the SDK with the DSN"
               " http://<ledger API key>@<host>:<port>/<project number>"
               " (`ledger keys create` prints it)")

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Stored (or queued): `{\"id\": \"<event id>\"}`",
          "content": {"application/json": {"schema": {
              "type": "object", "properties": {"id": {"type": "string"}}}}}},
    400: {"model": ErrorResponse, "description": "Malformed envelope or event (which, why)"},
    401: {"model": ErrorResponse, "description": "Missing, unknown or revoked key"},
    403: {"model": ErrorResponse, "description": "The key is of another project"},
    413: {"model": ErrorResponse, "description": "Body over the cap after decompression"},
    415: {"model": ErrorResponse, "description": "A Content-Encoding other than gzip/deflate/br"},
    429: {"model": ErrorResponse, "description": "Over a limit: Retry-After, X-Sentry-Rate-Limits"},
    503: {"model": ErrorResponse, "description": "Queue full or a daemon down: Retry-After"},
}
_BODY_DOC: dict[str, Any] = {"requestBody": {
    "required": True,
    "description": "A Sentry envelope (`/envelope/`) or one event (`/store/`); gzip, deflate"
                   " or br allowed.",
    "content": {"application/x-sentry-envelope": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}}}}}


def _presented_key(request: Request, envelope_headers: dict[str, Any] | None) -> str:
    """The key from X-Sentry-Auth, ``?sentry_key=``, the envelope's DSN or X-API-Key."""
    for header in ("x-sentry-auth", "authorization"):
        value = request.headers.get(header)
        if value and "sentry_key" in value:
            key = sentry.key_from_auth_header(value)
            if key:
                return key
    key = request.query_params.get("sentry_key")
    if key:
        return key
    if envelope_headers and isinstance(envelope_headers.get("dsn"), str):
        key = sentry.key_from_dsn(envelope_headers["dsn"])
        if key:
            return key
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    raise AuthenticationError(MISSING_KEY)


async def _authenticate(request: Request, project: int,
                        envelope_headers: dict[str, Any] | None) -> ApiKeyPrincipal:
    principal = await authenticate_key(request, None, _presented_key(request, envelope_headers),
                                       "ingest")
    if principal.identity.project_dsn_id != project:
        raise PermissionDeniedError(
            f"this key belongs to project {principal.identity.project_slug!r}, whose DSN number"
            f" is {principal.identity.project_dsn_id}, not {project}: use that project's DSN")
    return principal


def _native_body(events: list[tuple[str, str, dict[str, Any]]]) -> bytes:
    """The native batch body of ``(where, event id, event)`` triples."""
    now = datetime.now(UTC)
    return orjson.dumps({"logs": [
        sentry.event_to_record(event, event_id=event_id, received_at=now)
        for _, event_id, event in events]})


async def _store(request: Request, principal: ApiKeyPrincipal, wheres: list[str],
                 body: bytes | None, answer_id: str) -> Response:
    """Ingest ``body`` (``_native_body`` of the events ``wheres`` name, None when there are
    none); 200 with ``answer_id`` unless every event fails.

    Only strings and bytes wait for ingest here, never the decoded events or their records:
    objects alive across that await outlive the collector's young generations, and with
    dozens of requests in flight that promoted enough of them to run full collections of the
    gateway's heap often (≈ 12 % of its CPU under load, py-spy --native).
    """
    headers = principal.rate_headers()
    if body is None:
        return json_response({"id": answer_id}, 200, headers)
    response = await forward_logs(request.app.state.gateway, principal.identity, "batch", body)
    if response.accepted == 0:
        reasons = "; ".join(f"{wheres[e.index]}: {e.field}: {e.reason}"
                            for e in response.errors if e.index < len(wheres))
        return error_response(400, reasons or response.message or "the event is invalid",
                              headers)
    return json_response({"id": answer_id}, 200, headers)


def _with_sentry_limits(response: Response, exc: LedgerError) -> Response:
    """Add ``X-Sentry-Rate-Limits`` so that the SDK stops sending for ``Retry-After``."""
    retry = response.headers.get("retry-after")
    if retry and isinstance(exc, RateLimitedError | QueueFullError):
        # <seconds>:<categories, empty = all>:<scope>
        response.headers["X-Sentry-Rate-Limits"] = f"{retry}::key"
    return response


async def _answer(request: Request, work: Coroutine[Any, Any, Response]) -> Response:
    try:
        return await work
    except LedgerError as exc:
        return _with_sentry_limits(await ledger_error_handler(request, exc), exc)


@router.post("/api/{project}/envelope/", summary="Sentry SDK envelope", responses=_RESPONSES,
             openapi_extra=_BODY_DOC, response_class=Response)
async def envelope(request: Request, project: int) -> Response:
    """Receive a Sentry envelope: its events become logs; other items are counted."""
    return await _answer(request, _envelope(request, project))


@router.post("/api/{project}/envelope", include_in_schema=False, response_class=Response)
async def envelope_no_slash(request: Request, project: int) -> Response:
    """The same without the trailing slash (a redirect would lose the POST body)."""
    return await _answer(request, _envelope(request, project))


async def _envelope(request: Request, project: int) -> Response:
    gateway: Gateway = request.app.state.gateway
    body = await read_body(request, gateway.settings.gateway_max_body_bytes, any_encoding=True)
    parsed = sentry.parse_envelope(body)
    principal = await _authenticate(request, project, parsed.headers)
    wheres, native, answer_id = _envelope_events(gateway, parsed)
    return await _store(request, principal, wheres, native, answer_id)


def _envelope_events(gateway: Gateway, parsed: sentry.Envelope,
                     ) -> tuple[list[str], bytes | None, str]:
    """``(where of each event, native body or None, answer id)`` of an envelope's items.

    Synchronous on purpose: the decoded events are garbage before the request awaits again.
    """
    fallback_id = parsed.headers.get("event_id")
    events: list[tuple[str, str, dict[str, Any]]] = []
    for item in parsed.items:
        gateway.metrics.count_sentry_item(item.type)
        if item.type not in sentry.EVENT_ITEM_TYPES:
            continue
        where = f"item {item.index} ({item.type})"
        event = sentry.parse_event(item.payload, where)
        events.append((where, sentry.event_id_of(event, fallback_id if not events else None),
                       event))
    if not events:
        return [], None, sentry.event_id_of({}, fallback_id)
    return [where for where, _, _ in events], _native_body(events), events[0][1]


@router.post("/api/{project}/store/", summary="Sentry SDK event (legacy)", responses=_RESPONSES,
             openapi_extra=_BODY_DOC, response_class=Response)
async def store(request: Request, project: int) -> Response:
    """Receive one Sentry event (the protocol before envelopes)."""
    return await _answer(request, _legacy_store(request, project))


@router.post("/api/{project}/store", include_in_schema=False, response_class=Response)
async def store_no_slash(request: Request, project: int) -> Response:
    """The same without the trailing slash."""
    return await _answer(request, _legacy_store(request, project))


async def _legacy_store(request: Request, project: int) -> Response:
    gateway: Gateway = request.app.state.gateway
    body = await read_body(request, gateway.settings.gateway_max_body_bytes, any_encoding=True)
    principal = await _authenticate(request, project, None)
    wheres, native, event_id = _legacy_event(gateway, body)
    return await _store(request, principal, wheres, native, event_id)


def _legacy_event(gateway: Gateway, body: bytes) -> tuple[list[str], bytes, str]:
    """``_envelope_events`` for the one event of ``/store/``."""
    event = sentry.parse_event(body, "the event")
    gateway.metrics.count_sentry_item("event")
    event_id = sentry.event_id_of(event)
    return ["the event"], _native_body([("the event", event_id, event)]), event_id


async def _lean_envelope(request: Request) -> Response:
    return await _answer(request, _envelope(request, request.path_params["project"]))


async def _lean_store(request: Request) -> Response:
    return await _answer(request, _legacy_store(request, request.path_params["project"]))


#: Served ahead of FastAPI's stack (``app.HotPaths``) like the native ingest routes: envelopes
#: are the Sentry SDKs' hot path. The FastAPI routes above document them in /openapi.json.
LEAN_ROUTES = tuple(
    Route(path, endpoint, methods=["POST"], include_in_schema=False)
    for path, endpoint in (("/api/{project:int}/envelope/", _lean_envelope),
                           ("/api/{project:int}/envelope", _lean_envelope),
                           ("/api/{project:int}/store/", _lean_store),
                           ("/api/{project:int}/store", _lean_store)))
