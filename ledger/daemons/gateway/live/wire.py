"""The thinnest write the server allows: a live stream's body chunks straight to its socket.

Fanning one event out to a thousand SSE clients is a thousand writes. Through ASGI each one
is a ``send`` coroutine stepped through every middleware's wrapper (metrics, body limit, 500
handling, NUL check, Starlette's two exception layers) down to uvicorn's ``send``, which
frames the chunk and only then calls ``transport.write``: measured with py-spy, that chain
was about half of the gateway's CPU per delivery, the socket write the other half.

So the gateway's HTTP protocol (``LiveHttpProtocol``, uvicorn's httptools protocol with the
head bounds of ``edge/slow_clients.py``) offers each GET request a server extension,
``scope["extensions"][EXTENSION]["writer"]``: a ``BodyChunks`` bound to the request's
response, which writes an already framed HTTP/1.1 chunk to the transport — what uvicorn's
``send`` does for a body message, minus the per-call framing and coroutine. It keeps the
server's flow control: while the transport's buffer is over its high-water mark (uvicorn
paused writing) it writes nothing and says so, and the caller sends through ASGI, which waits
for the socket; a disconnected client's chunk is dropped, as uvicorn's ``send`` drops it.

Only the body chunks between the response's start and its end take this way; the start and the
end still go through ``send``, so the middleware see the status and the end of every stream.
That is right only while every middleware passes body chunks through untouched: the live route
checks the app's middleware against ``BODY_TRANSPARENT`` (``routes.raw_body_chunks``) and
falls back to ``send`` otherwise. In-process test transports (httpx's ``ASGITransport``) offer
no extension and take ``send`` too.

It relies on uvicorn's ``RequestResponseCycle`` attributes (``transport``, ``flow``,
``disconnected``, ``response_started``, ``response_complete``, ``chunked_encoding``); a
uvicorn without them gets no extension (``BodyChunks.attach``), so a change there costs speed,
never correctness. ``tests/integration/test_live_routes.py`` checks that the real server
offers it and that the live route takes it.
"""

from __future__ import annotations

from typing import Any

from ledger.daemons.gateway.edge.slow_clients import BoundedHttpToolsProtocol

#: The key of the extension in ``scope["extensions"]``.
EXTENSION = "ledger.body_chunks"
_CYCLE_ATTRIBUTES = ("transport", "flow", "disconnected", "response_started",
                     "response_complete", "chunked_encoding", "scope")


def chunk(body: bytes) -> bytes:
    """``body`` as one HTTP/1.1 chunk (it must not be empty: that would end the body)."""
    return b"%x\r\n%b\r\n" % (len(body), body)


class BodyChunks:
    """Writes framed chunks of one response's body straight to its connection."""

    __slots__ = ("_cycle", "_flow", "_transport")

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle
        self._flow = cycle.flow
        self._transport = cycle.transport

    @classmethod
    def attach(cls, cycle: Any) -> BodyChunks | None:
        """The extension for uvicorn's ``cycle``; None if it lacks what this relies on."""
        if not all(hasattr(cycle, name) for name in _CYCLE_ATTRIBUTES):
            return None
        flow = cycle.flow
        if not hasattr(flow, "write_paused"):
            return None
        return cls(cycle)

    @staticmethod
    def offered(scope: Any) -> BodyChunks | None:
        """The extension the server put in ``scope``, if any."""
        extension = scope.get("extensions", {}).get(EXTENSION)
        writer = extension.get("writer") if isinstance(extension, dict) else None
        return writer if isinstance(writer, BodyChunks) else None

    def usable(self) -> bool:
        """Whether raw chunks may go out now: the response started, chunked, not ended, no HEAD
        (uvicorn writes no body for one)."""
        cycle = self._cycle
        return bool(cycle.response_started and not cycle.response_complete
                    and cycle.chunked_encoding is True and cycle.scope["method"] != "HEAD")

    def write(self, framed: bytes) -> bool:
        """Write ``framed`` (see ``chunk``) now. False, with nothing written, while the
        socket is backed up: send it through ASGI then, which waits for the socket."""
        if self._cycle.disconnected:
            return True  # as uvicorn's send: dropped, the stream is being cancelled
        if self._flow.write_paused:
            return False
        try:
            self._transport.write(framed)
        except Exception:  # a closing transport, say: ASGI's send raises it again
            # Never out of here: this runs inside the hub's fan-out loop, for every client.
            # Through ASGI the same write raises in the client's own task and ends its stream.
            return False
        return True


class LiveHttpProtocol(BoundedHttpToolsProtocol):
    """The gateway's HTTP protocol: head bounds, and ``BodyChunks`` for each GET request."""

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # A new cycle is made for every request head that is answered (not for a refused or
        # upgraded one); only GET requests can be live streams.
        if cycle is not None and cycle is not previous and self.scope["method"] == "GET":
            extension = BodyChunks.attach(cycle)
            if extension is not None:
                # ASGI extensions are dicts of their own.
                self.scope.setdefault("extensions", {})[EXTENSION] = {"writer": extension}
