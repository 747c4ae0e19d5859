"""Live routes (DESIGN §5, §7): ``GET /notifications/stream`` and ``GET /logs/tail`` over SSE.

Each stream is::

    retry: 2000
    id: <cursor>            event: connected            data: {"projects": [...], ...}
    id: <cursor>            event: error_notification   data: {<the log>}      (or ``log``)
                            event: skipped              data: {"count": 3, "reason": ...}
                            event: heartbeat            data: {"time": ...}    (every 15 s)

The cursor is the stream id of the last event sent (one project) or ``<project>:<id>,…`` (many),
and ``connected`` carries the starting one, so a client that reconnects with ``Last-Event-ID``
(header, or the ``last_event_id`` parameter) misses nothing the capped stream still holds. An
API key follows its own project; an account follows its projects, as its notification
preferences say. Everything is set up before the answer starts, so a bad cursor, an unknown
project or Redis being down are ordinary 4xx/503 answers, not a stream cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import StreamingResponse

from ledger.core.events import LEVELS, LOG_TYPES
from ledger.daemons.gateway.edge.access import not_found
from ledger.daemons.gateway.edge.account_sessions import AccountPrincipal
from ledger.daemons.gateway.edge.body_limit import BodyLimitMiddleware
from ledger.daemons.gateway.edge.principal import (
    AUTH_RESPONSES,
    ApiKeyPrincipal,
    Principal,
    RequirePrincipal,
)
from ledger.daemons.gateway.edge.stream_tickets import StreamPrincipal, TicketPrincipal
from ledger.daemons.gateway.live.events import (
    NOTIFICATIONS,
    TAIL,
    EventFilter,
    Feed,
    format_cursor,
    parse_cursor,
)
from ledger.daemons.gateway.live.hub import CLOSING_REASON, Hub
from ledger.daemons.gateway.live.preferences import account_preferences
from ledger.daemons.gateway.live.revocations import StreamCredentials
from ledger.daemons.gateway.live.sse import LiveResponse, frame, now
from ledger.daemons.gateway.live.wire import BodyChunks
from ledger.daemons.gateway.routes.metrics import MetricsMiddleware
from ledger.daemons.gateway.routes.responses import InternalErrorMiddleware, NulInUrlMiddleware
from ledger.daemons.gateway.schemas.ingest import ErrorResponse
from ledger.daemons.gateway.state import Gateway, get_gateway
from ledger.errors import InvalidInputError, RateLimitedError, UnavailableError

HEARTBEAT_SECONDS = 15.0
RECONNECT_MS = 2000

router = APIRouter(prefix="/api/v1", tags=["live"])


# -- the hub's life with the gateway --------------------------------------------------------


@dataclass
class Live:
    """The gateway's live state: its hub and who holds how many streams."""

    hub: Hub
    credentials: StreamCredentials
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    max_streams: int = 20  # per API key, project and account (LEDGER_GATEWAY_MAX_LIVE_STREAMS)
    streams: Counter[str] | None = None

    @contextlib.contextmanager
    def claim(self, *owners: str) -> Iterator[None]:
        """Count one stream of each of ``owners``; refuse when one holds ``max_streams``."""
        streams = self.streams if self.streams is not None else Counter()
        self.streams = streams
        for owner in owners:
            if streams[owner] >= self.max_streams:
                raise RateLimitedError(
                    f"too many live streams open for this {owner.split(':', 1)[0]}"
                    f" ({self.max_streams} per gateway): close one and retry", retry_after=5)
        for owner in owners:
            streams[owner] += 1
        try:
            yield
        finally:
            for owner in owners:
                streams[owner] -= 1
                if streams[owner] <= 0:
                    del streams[owner]


@contextlib.asynccontextmanager
async def open_live(gateway: Gateway) -> AsyncIterator[Live]:
    """Start the hub for the gateway's life; end every stream when the gateway starts closing."""
    hub = Hub(gateway.redis)
    await hub.start()
    gateway.tasks.append(asyncio.create_task(hub.wait(), name="gateway-live-pubsub"))

    async def end_streams_on_close() -> None:
        await gateway.closing.wait()
        hub.close_subscriptions()

    credentials = StreamCredentials(gateway.redis)
    gateway.keys.revocation_listeners.append(credentials.key_revoked)
    live = Live(hub, credentials, max_streams=gateway.settings.gateway_max_live_streams)
    helpers = [asyncio.create_task(end_streams_on_close(), name="gateway-live-closer"),
               asyncio.create_task(_beat(live), name="gateway-live-heartbeat"),
               asyncio.create_task(credentials.run(), name="gateway-live-credentials")]
    try:
        yield live
    finally:
        gateway.keys.revocation_listeners.remove(credentials.key_revoked)
        for task in helpers:
            task.cancel()
        for task in helpers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await hub.stop()


async def _beat(live: Live) -> None:
    """A heartbeat to every client every ``heartbeat_seconds``: one timer for all of them."""
    last = time.monotonic()
    while True:
        # Short sleeps so that a changed interval (tests) applies at once.
        await asyncio.sleep(min(live.heartbeat_seconds, 1.0))
        if time.monotonic() - last >= live.heartbeat_seconds:
            last = time.monotonic()
            live.hub.heartbeat()


def get_live(request: Request) -> Live:
    live: Live = request.app.state.live
    return live


# -- parameters -----------------------------------------------------------------------------


def _choices(raw: str | None, allowed: tuple[str, ...], name: str) -> frozenset[str] | None:
    if raw is None or not raw.strip():
        return None
    values = frozenset(v.strip().lower() for v in raw.split(",") if v.strip())
    unknown = sorted(values - set(allowed))
    if unknown:
        raise InvalidInputError(f"unknown {name} {', '.join(unknown)}: use any of"
                                f" {', '.join(allowed)} (comma-separated)")
    return values


async def _targets(gateway: Gateway, principal: Principal, project: str | None,
                   wanted: EventFilter) -> dict[str, EventFilter]:
    """The projects this caller follows, each with its filter (404 for another's project)."""
    if isinstance(principal, ApiKeyPrincipal):
        identity = principal.identity
        if project and project not in (identity.project_id, identity.project_slug):
            raise not_found(project)
        return {identity.project_id: wanted}
    return await _account_targets(gateway, principal, project, wanted)


async def _account_targets(gateway: Gateway, principal: AccountPrincipal, project: str | None,
                           wanted: EventFilter) -> dict[str, EventFilter]:
    """An account's projects, narrowed by its notification preferences (DESIGN §5)."""
    prefs = await account_preferences(gateway, principal.account_id)
    if project:
        prefs = [p for p in prefs if project in (p.project_id, p.project_slug)]
        if not prefs:
            raise not_found(project)
    targets: dict[str, EventFilter] = {}
    for pref in prefs:
        if not pref.enabled:
            continue
        levels = frozenset(pref.levels)
        if wanted.levels is not None:
            levels &= wanted.levels
        log_types = None if pref.log_types is None else frozenset(pref.log_types)
        if wanted.log_types is not None:
            log_types = wanted.log_types if log_types is None else log_types & wanted.log_types
        targets[pref.project_id] = EventFilter(levels, log_types)
    return targets


def _owners(principal: Principal) -> tuple[str, ...]:
    """Whose stream budget a stream spends: an account's, or a key's, its project's and its
    account's (so that creating more keys or more projects does not buy more streams)."""
    if isinstance(principal, ApiKeyPrincipal):
        identity = principal.identity
        owners = (f"API key:{identity.key_id}", f"project:{identity.project_id}")
        # Empty only in an identity cached by an older gateway: it expires within minutes.
        return (*owners, f"account:{identity.account_id}") if identity.account_id else owners
    return (f"account:{principal.account_id}",)


async def _open_stream(request: Request, feed: Feed, principal: Principal, project: str | None,
                       levels: str | None, log_types: str | None,
                       last_event_id: str | None) -> StreamingResponse:
    gateway = get_gateway(request)
    live = get_live(request)
    if gateway.closing.is_set():
        raise UnavailableError(CLOSING_REASON, retry_after=1, service="the gateway")
    wanted = EventFilter(_choices(levels, LEVELS, "level"),
                         _choices(log_types, LOG_TYPES, "log_type"))
    targets = await _targets(gateway, principal, project, wanted)
    resume = parse_cursor(last_event_id, targets)
    stack = contextlib.AsyncExitStack()
    try:
        stack.enter_context(live.claim(*_owners(principal)))
        sub = await stack.enter_async_context(live.hub.subscribe(feed, targets))
        stack.enter_context(live.credentials.watch(principal, sub))
        replay = await sub.start(resume)
    except BaseException:
        await stack.aclose()
        raise
    hello = orjson.dumps({"projects": sorted(targets), "feed": feed.name,
                          "resumed": bool(resume), "heartbeat_seconds": live.heartbeat_seconds,
                          "time": now()})
    first = (f"retry: {RECONNECT_MS}\n".encode()
             + frame("connected", hello, format_cursor(dict(sub.watermark_at_start))))
    return LiveResponse(sub, feed, first, replay, stack, raw_body_chunks(request))


#: Middleware known to pass response body chunks through untouched (they look at the start
#: message, or at nothing of the response). Only then may the hub write a live stream's chunks
#: past them (``wire.py``); a middleware added to the app and not listed here sends every
#: stream through ASGI again (slower, still correct), and ``test_live_routes.py`` says so.
BODY_TRANSPARENT: frozenset[type] = frozenset({
    MetricsMiddleware, BodyLimitMiddleware, InternalErrorMiddleware, NulInUrlMiddleware})


def raw_body_chunks(request: Request) -> BodyChunks | None:
    """The server's raw chunk writer for this request, if it offers one and may use it."""
    extension = BodyChunks.offered(request.scope)
    if extension is None:
        return None
    app = request.scope.get("app")
    middleware = getattr(app, "user_middleware", None)
    if middleware is None or any(m.cls not in BODY_TRANSPARENT for m in middleware):
        return None
    return extension


# -- routes ---------------------------------------------------------------------------------

_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "A Server-Sent Events stream (see the route's description).",
          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    400: {"model": ErrorResponse, "description": "Bad level, log_type or Last-Event-ID"},
    404: {"model": ErrorResponse, "description": "No such project among the caller's"},
    **AUTH_RESPONSES,
}

_PROJECT = Query(None, description="Project id or slug. Implied by an API key; an account"
                                   " follows all its projects when left out.")
_LEVEL = Query(None, description="Only these levels (comma-separated).")
_LOG_TYPE = Query(None, description="Only these log types (comma-separated).")
_CURSOR_PARAM = Query(None, description="Resume after this event id, for clients that cannot"
                                        " send the Last-Event-ID header.")
_CURSOR_HEADER = Header(None, alias="Last-Event-ID",
                        description="Resume after this event id (sent back by SSE clients).")


@router.get("/notifications/stream", summary="Live errors (SSE)", response_class=StreamingResponse,
            responses=_SSE_DOC)
async def notifications_stream(
    request: Request,
    principal: Principal = Depends(StreamPrincipal()),
    project_id: str | None = _PROJECT,
    level: str | None = _LEVEL,
    log_type: str | None = _LOG_TYPE,
    last_event_id: str | None = _CURSOR_PARAM,
    last_event_id_header: str | None = _CURSOR_HEADER,
) -> StreamingResponse:
    """Each new error (an `exception` log, or level `error`/`critical`) as it is ingested.

    Events: `connected` (once), `error_notification` (data: the log: `id`, `project_id`,
    `timestamp`, `level`, `log_type`, `message`, `error_type`, `error_message`,
    `error_fingerprint`, `stack_trace`, `attributes`, `environment`, `release`), `skipped`
    (`count` events this client will not get, and why), `heartbeat` every 15 s, and `closing`
    (data: `reason`) as the last event when the gateway shuts down: reconnect.
    Reconnect with `Last-Event-ID` to receive what was missed (the newest 1 000 are kept).
    Browsers authenticate with `ticket` instead of a header (one project, one stream, 60 s).
    """
    if isinstance(principal, TicketPrincipal):
        project_id = principal.narrow(project_id)
    return await _open_stream(request, NOTIFICATIONS, principal, project_id, level, log_type,
                              last_event_id_header or last_event_id)


@router.get("/logs/tail", summary="Live logs of a project (SSE)", response_class=StreamingResponse,
            responses=_SSE_DOC)
async def logs_tail(
    request: Request,
    principal: Principal = Depends(RequirePrincipal("read")),
    project_id: str | None = _PROJECT,
    level: str | None = _LEVEL,
    log_type: str | None = _LOG_TYPE,
    last_event_id: str | None = _CURSOR_PARAM,
    last_event_id_header: str | None = _CURSOR_HEADER,
) -> StreamingResponse:
    """Every new log of the project, of any level, as it is ingested (`event: log`).

    Same events and resume rules as `/notifications/stream`; the newest 2 000 logs are kept
    for resuming, and only while someone follows the tail. An account must name `project_id`.
    """
    if not isinstance(principal, ApiKeyPrincipal) and not project_id:
        raise InvalidInputError("name the project to follow: ?project_id=<id or slug>")
    return await _open_stream(request, TAIL, principal, project_id, level, log_type,
                              last_event_id_header or last_event_id)
