"""A cap on every request body, read or not, so that no route can be made to buffer gigabytes.

Only the ingest routes read their bodies themselves, with their own (larger, decompressed) cap
(``routes/bodies.py``); every other route takes small JSON, and FastAPI reads a body whole
before validating it. So everything but those routes is held to ``max_bytes``: a declared
``Content-Length`` over it is refused before a byte is read, and a chunked body is counted as
it arrives and refused (413) as soon as it passes the cap.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.errors import PayloadTooLargeError

#: What the account, project and key routes accept (their bodies are a few hundred bytes).
DEFAULT_MAX_BYTES = 64 * 1024


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` (413), except on the paths of ``own_caps``
    (routes that read and cap their bodies themselves; path parameters match as they do)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 own_caps: Sequence[Route] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._own_caps = [route.path_regex for route in own_caps]
        # The lean path (edge/hot_paths.py) puts its route in the scope before this runs: one
        # set lookup instead of a regex per route. Routes compare by value, so by id here.
        self._own_routes = {id(route) for route in own_caps}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or id(scope.get("route")) in self._own_routes or any(
                p.match(scope["path"]) for p in self._own_caps):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)  # before the app sees a byte
                return
        seen = 0
        exceeded = False
        answered = False

        async def counting() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise self._too_large()
            return message

        async def sending(message: Message) -> None:
            # FastAPI turns any failure while reading a body into its own 400: once the cap
            # is passed, the answer is our 413 whatever the app makes of the exception.
            nonlocal answered
            if exceeded:
                if not answered:
                    answered = True
                    await self._refuse(send)
                return
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except PayloadTooLargeError:
            if not exceeded:
                raise
            if not answered:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps({"detail": self._too_large().message})
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    def _too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(f"the request body is over {self.max_bytes} bytes, the most"
                                    " this route accepts")
