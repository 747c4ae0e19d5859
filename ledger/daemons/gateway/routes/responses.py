"""The HTTP edge of the LedgerError tree: every failure becomes ``{"detail": "..."}``.

- ``LedgerError`` → its ``http_status`` and message (``Retry-After`` when it carries one).
  5xx answers say only the class's generic message: what failed inside stays in the log.
- ``RequestValidationError`` (query/path/header parameters) → 422 with a readable sentence.
- Redis unreachable, slow, out of memory (``noeviction``), loading, read-only or failing over
  → 503, like any unavailable dependency.
- Every 503 carries ``Retry-After`` and names what is unavailable ("Redis", "the query
  daemon"), never its address.
- A NUL in the URL → 400 (``NulInUrlMiddleware``), before any route looks it up.
- Anything else → 500 ``{"detail": "internal error"}``, logged once with its traceback, by
  ``InternalErrorMiddleware`` (Starlette's own handler would re-raise it after answering).

Rate-limit headers computed for the request (``request.state.rate_limit``) are added to error
answers too, so a client sees its limits on a 400 or a 429 alike.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import urllib.parse
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger import bus
from ledger.errors import InvalidInputError, LedgerError, QueueFullError, UnavailableError
from ledger.queue.limits import QUEUE_FULL_RETRY_SECONDS

logger = logging.getLogger(__name__)



class UnsupportedMediaTypeError(InvalidInputError):
    """The request's Content-Type or Content-Encoding is not supported."""

    code = "unsupported_media_type"
    http_status = 415


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer serialised with orjson (the hot paths skip FastAPI's encoder)."""
    return Response(orjson.dumps(content), status_code=status_code, headers=headers,
                    media_type="application/json")


_JSON_TYPE = (b"content-type", b"application/json")


class _JsonBytesResponse(Response):
    """A Response whose header bytes are made by the caller (see ``json_bytes_response``)."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int,
                 raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        raw_headers.append((b"content-length", b"%d" % len(body)))
        raw_headers.append(_JSON_TYPE)
        self.raw_headers = raw_headers


def json_bytes_response(content: Any, status_code: int,
                        raw_headers: list[tuple[bytes, bytes]]) -> Response:
    """``json_response`` with headers already as ASGI bytes (lower-case names, no
    Content-Length or Content-Type, which are added as Starlette adds them): the same answer,
    without Starlette lowercasing and encoding a dict (the single-log hot path, issue 17).
    ``raw_headers`` becomes the answer's own list."""
    return _JsonBytesResponse(orjson.dumps(content), status_code, raw_headers)


def model_body(model: Any) -> dict[str, Any]:
    """A core model (a dataclass) as the REST API shows it: its fields under their own names,
    timestamps in ISO 8601, tuples as lists. One shape, so a field added to the model appears
    in the API without a second list of fields to keep in step."""
    body: dict[str, Any] = {}
    for field in dataclasses.fields(model):
        value = getattr(model, field.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        body[field.name] = value
    return body


def error_response(status_code: int, detail: str,
                   headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """The one error body shape: ``{"detail": ...}`` (plus e.g. per-item ``errors``)."""
    return json_response({"detail": detail, **extra}, status_code, headers)


def _rate_headers(request: Request) -> dict[str, str]:
    state = getattr(request.state, "rate_limit", None)
    return state.headers() if state is not None else {}


async def ledger_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LedgerError)
    headers = _rate_headers(request)
    retry_after = exc.retry_after
    if retry_after is None and isinstance(exc, QueueFullError):
        retry_after = QUEUE_FULL_RETRY_SECONDS
    if retry_after is None and exc.http_status == 503:
        retry_after = UNAVAILABLE_RETRY_SECONDS
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    status = exc.http_status
    if status >= 500:
        # The specific message may name hosts or databases: log it, answer the generic one.
        logger.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc.message)
        detail = (type(exc).__doc__ or "internal error").strip() if status != 500 \
            else "internal error"
        if isinstance(exc, UnavailableError) and exc.service:
            detail = f"{exc.service} is unavailable; try again in {retry_after} s"
        return error_response(status, detail, headers)
    return error_response(status, exc.message, headers)


#: Retry-After of a 503 that did not say when.
UNAVAILABLE_RETRY_SECONDS = 5


async def redis_error_handler(request: Request, exc: Exception) -> Response:
    """Redis down, slow or out of memory is a 503 like any other unavailable dependency.

    Any other Redis error is a bug (a wrong command): re-raised, it becomes the logged 500.
    """
    assert isinstance(exc, RedisError)
    if not bus.unavailable(exc):
        raise exc
    logger.warning("%s %s: Redis failed: %s", request.method, request.url.path, exc)
    return await ledger_error_handler(request, UnavailableError(
        retry_after=UNAVAILABLE_RETRY_SECONDS, service="Redis"))


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One readable sentence for FastAPI's validation errors (never echoing the input)."""
    parts: list[str] = []
    for error in errors[:5]:
        loc = [str(p) for p in error.get("loc", ())]
        where = loc[0] if loc else "request"
        name = ".".join(loc[1:])
        label = {"query": "query parameter", "path": "path parameter", "header": "header",
                 "body": "body field", "cookie": "cookie"}.get(where, where)
        subject = f"{label} {name!r}" if name else label
        parts.append(f"{subject}: {error.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return "; ".join(parts) or "the request is invalid"


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, describe_validation_errors(exc.errors()), _rate_headers(request))


class InternalErrorMiddleware:
    """Answers 500 ``{"detail": "internal error"}`` for any unexpected exception, logged once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            # The boundary of one request: log it here, tell the client nothing of the internals.
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                return  # headers are out; the server closes the connection
            body = b'{"detail":"internal error"}'
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def _documented_methods(app: Any, path: str) -> set[str]:
    """Every method the OpenAPI document lists for a path matching ``path``."""
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {method.upper() for method in operations}
    return methods


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors (404, 405, ...) as ``{"detail": ...}``; a 405's ``Allow`` lists
    every method of the path.

    Starlette answers a 405 from the first route whose path matches, with that route's
    methods only: ``GET /projects`` said ``Allow: GET`` although ``POST`` works too.
    """
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        methods = _documented_methods(request.app, request.url.path)
        if methods:
            headers["Allow"] = ", ".join(sorted(methods))
    return error_response(exc.status_code, str(exc.detail), headers or None)


class NulInUrlMiddleware:
    """Answers 400 for a NUL (``%00``) in the path or the query string.

    No route takes one (ids, slugs, filters), and PostgreSQL text cannot hold it: refusing it
    once here keeps every lookup behind the gateway from failing on it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
                "\x00" in scope["path"] or b"%00" in scope["query_string"]):
            response = error_response(400, f"{_where_nul(scope)} contains a NUL character"
                                           " (%00), which no parameter allows")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _where_nul(scope: Scope) -> str:
    """Which part of the URL holds the NUL: the path, or the query parameter, by name."""
    if "\x00" in scope["path"]:
        return "the path"
    query = scope["query_string"].decode("latin-1")
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if "\x00" in value or "\x00" in name:
            return f"query parameter {name.replace(chr(0), '')[:100]!r}"
    return "the query string"


def install(app: FastAPI) -> None:
    """Register the handlers and the 500 middleware on ``app``."""
    app.add_exception_handler(LedgerError, ledger_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RedisError, redis_error_handler)
    app.add_middleware(NulInUrlMiddleware)
    app.add_middleware(InternalErrorMiddleware)
