"""The HTTP protocol with bounds on what a client may make the gateway hold before it asks.

uvicorn's httptools protocol has no timeout until a request's head is complete and no cap on
its size: a connection that sends nothing, half a head, or one byte every 2 s stayed open for
minutes, and a 100 MiB header was read whole. Here each request head must arrive within
``head_timeout`` seconds of its first byte (or of the connection, for the first request) and
fit in ``max_head_bytes``; otherwise the connection is closed (431 for a head too large).
Idle keep-alive connections between requests are uvicorn's own ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Seconds a client has to send a whole request head.
HEAD_TIMEOUT_SECONDS = 10.0
#: Bytes of request line and headers accepted (browsers send a few KiB with cookies).
MAX_HEAD_BYTES = 64 * 1024



def _too_large(limit: int) -> bytes:
    body = b'{"detail":"the request head is over %d bytes"}' % limit
    return (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)) + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline and a size cap on each request head."""

    head_timeout: float = HEAD_TIMEOUT_SECONDS
    max_head_bytes: int = MAX_HEAD_BYTES

    @classmethod
    def bounded(cls, head_timeout: float, max_head_bytes: int) -> type[BoundedHttpToolsProtocol]:
        """The protocol class with other bounds (uvicorn takes a class, not an instance)."""
        return type(cls.__name__, (cls,), {"head_timeout": head_timeout,
                                           "max_head_bytes": max_head_bytes})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a chunk may end the head and carry body bytes as well.
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._refuse()

    def _refuse(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_too_large(self.max_head_bytes))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        # A head that arrived whole in one read is measured here, before any app sees it.
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.max_head_bytes:
            self._refuse()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.transport.is_closing():
            return
        super().on_message_complete()
        # What this connection sends next is the next request's head.
        self._in_head = True
        self._head_bytes = 0

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.transport.close()
