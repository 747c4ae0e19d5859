"""A Server-Sent Events client that reconnects by itself and resumes with ``Last-Event-ID``.

    source = EventSource(url, headers={"X-API-Key": key})
    async for item in source.stream():
        if isinstance(item, ServerEvent): ...        # an event (its id is remembered)
        else: ...                                     # a Connection: connecting/connected/waiting

Network failures, a server that closes the stream, 5xx and 429 answers are retried with an
exponential back-off (reset by every successful connection); each retry sends the id of the
last event received, so the server replays what was missed. Answers that retrying cannot fix
(401, 403, 404, 400) raise the matching ``LedgerError``. Used by ``ledger tail`` both in the
TUI and in its JSON-lines mode, so it never imports textual.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson

from ledger.errors import (
    AuthenticationError,
    InvalidInputError,
    LedgerError,
    NotFoundError,
    PermissionDeniedError,
)

DEFAULT_RETRY_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 30.0
#: Three missed heartbeats (sent every 15 s) mean the connection is dead.
READ_TIMEOUT_SECONDS = 45.0

_FATAL: dict[int, type[LedgerError]] = {
    400: InvalidInputError, 401: AuthenticationError, 403: PermissionDeniedError,
    404: NotFoundError, 422: InvalidInputError,
}


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One event: ``event`` (``message`` when unnamed), its ``data`` text and its ``id``."""

    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


@dataclass(frozen=True, slots=True)
class Connection:
    """The connection changed state.

    ``waiting``: it failed (``error`` says why) and the next attempt is at ``retry_at``
    (``time.monotonic()`` clock).
    """

    state: Literal["connecting", "connected", "waiting"]
    attempt: int = 0
    retry_at: float | None = None
    error: str | None = None


class _Parser:
    """The SSE line protocol (WHATWG "event stream interpretation")."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = ServerEvent(self._event or "message", "\n".join(self._data), self.last_id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


class EventSource:
    """A resumable SSE stream of ``url``.

    Args:
        url: the stream's URL (query parameters included or in ``params``).
        headers: sent on every attempt (credentials).
        last_event_id: resume after this id on the first attempt too.
        retry_seconds: fixed delay before the first retry; None follows the server's ``retry:``.
        client: an httpx client to use (closed by its owner); one is made otherwise.
        fresh_headers: called before each attempt for the headers to send instead of
            ``headers`` (credentials that expire, such as an account's access token).
    """

    def __init__(self, url: str, *, headers: dict[str, str] | None = None,
                 params: dict[str, str] | None = None, last_event_id: str | None = None,
                 retry_seconds: float | None = None, client: httpx.AsyncClient | None = None,
                 read_timeout: float = READ_TIMEOUT_SECONDS,
                 max_backoff: float = MAX_BACKOFF_SECONDS,
                 fresh_headers: Callable[[], Awaitable[dict[str, str]]] | None = None) -> None:
        self.url = url
        self._fresh_headers = fresh_headers
        self.headers = dict(headers or {})
        self.params = dict(params or {})
        self.last_event_id = last_event_id
        self.max_backoff = max_backoff
        self._fixed_retry = retry_seconds
        self._server_retry = DEFAULT_RETRY_SECONDS
        self._client = client
        self._timeout = httpx.Timeout(5.0, read=read_timeout)

    async def stream(self) -> AsyncIterator[ServerEvent | Connection]:
        """Events and connection changes, forever (until the caller stops iterating).

        Raises:
            LedgerError: the server refused in a way that retrying cannot fix.
        """
        owned = self._client is None
        client = self._client or httpx.AsyncClient(timeout=self._timeout)
        failures = 0
        try:
            while True:
                yield Connection("connecting", failures)
                error: str
                try:
                    async for item in self._attempt(client):
                        if isinstance(item, Connection):
                            failures = 0  # a stream that got through resets the back-off
                        yield item
                    error = "the server closed the stream"
                except httpx.TransportError as exc:
                    error = _describe(exc)
                except _RetryLater as exc:
                    error = exc.reason
                    if exc.after is not None:
                        failures = max(failures, 1)
                        delay = exc.after
                        yield Connection("waiting", failures, time.monotonic() + delay, error)
                        await asyncio.sleep(delay)
                        continue
                failures += 1
                delay = self._delay(failures)
                yield Connection("waiting", failures, time.monotonic() + delay, error)
                await asyncio.sleep(delay)
        finally:
            if owned:
                await client.aclose()

    def _delay(self, failures: int) -> float:
        base = self._fixed_retry if self._fixed_retry is not None else self._server_retry
        if failures <= 1:
            return base
        backoff = min(self.max_backoff, base * 2.0 ** (failures - 1))
        return backoff * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not a secret

    async def _attempt(self, client: httpx.AsyncClient) -> AsyncIterator[ServerEvent | Connection]:
        if self._fresh_headers is not None:
            self.headers = dict(await self._fresh_headers())
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **self.headers}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        async with client.stream("GET", self.url, params=self.params, headers=headers,
                                 timeout=self._timeout) as response:
            await _check(response)
            yield Connection("connected")
            parser = _Parser()
            parser.last_id = self.last_event_id
            async for line in response.aiter_lines():
                event = parser.feed(line)
                if parser.retry_ms is not None:
                    self._server_retry = parser.retry_ms / 1000
                if event is not None:
                    self.last_event_id = parser.last_id
                    yield event


class _RetryLater(Exception):
    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


async def _check(response: httpx.Response) -> None:
    if response.status_code == 200:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            raise InvalidInputError(f"{response.url} is not an event stream: is the URL right?")
        return
    await response.aread()
    detail = _detail(response)
    if response.status_code in _FATAL:
        raise _FATAL[response.status_code](detail)
    after = response.headers.get("retry-after", "")
    raise _RetryLater(f"HTTP {response.status_code}: {detail}",
                      float(after) if after.isdigit() else None)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return response.reason_phrase or f"HTTP {response.status_code}"


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect to the server"
    if isinstance(exc, httpx.ReadTimeout):
        return "no data from the server for too long"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return "the connection dropped"
    return f"connection lost ({type(exc).__name__})"
