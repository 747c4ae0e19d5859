"""A response with a Content-Length leaves in one socket write: its head with its body.

uvicorn's ``send`` writes the status line and headers when the app sends
``http.response.start``, and the body when it sends ``http.response.body``; uvloop writes each
at once, so every answer cost two ``write`` system calls, two TCP segments and two wake-ups of
the client. On a single-log request those writes were a fifth of the gateway's CPU
(py-spy --native, issue 17), the head's the larger part.

So the gateway's HTTP protocol makes each request's cycle a ``OneWriteCycle``
(``hold_head``). uvicorn still frames the head itself, with its checks and its Content-Length
bookkeeping, but into a ``_HeldHead`` standing in for the transport. When the head declares a
Content-Length (a whole body, which the client cannot use before it has it), the head waits
for the body's first write and both go out in one ``writelines``; a chunked head (a live
stream, whose client must see it before the first event) goes out at once. A head still
waiting when the response ends without writing a body (HEAD, 204, 304), when uvicorn closes
the connection (an app that failed after starting its answer) or when ``send`` raises, is
written first: the client gets the same bytes, in the same order, in fewer segments.

It relies on uvicorn's ``RequestResponseCycle`` writing only through ``cycle.transport``
(``write``, ``close``, ``is_closing``) and on its ``response_started``, ``response_complete``
and ``chunked_encoding``; a cycle without them keeps uvicorn's own send (speed, never
correctness). ``tests/integration/test_gateway_one_write.py`` checks the bytes on the wire
and the write count.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

_CYCLE_ATTRIBUTES = ("transport", "response_started", "response_complete", "chunked_encoding")


class _HeldHead:
    """The cycle's transport from its head until the first body write: keeps the head."""

    __slots__ = ("head", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        head, self.head = self.head, None
        if head is None:
            self.head = data  # the head, framed by uvicorn: held for the body
        else:
            self.transport.writelines((head, data))

    def flush(self) -> None:
        head, self.head = self.head, None
        if head is not None:
            self.transport.write(head)

    def close(self) -> None:
        self.flush()  # what was framed before the close goes out, as it did
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, ...
        return getattr(self.transport, name)


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's cycle, whose ``send`` holds a Content-Length head for the body's write.

    A class rather than a ``send`` closure set on each cycle: such a closure and the cycle
    would refer to each other, and every request's cycle, scope and state would wait for the
    cyclic collector instead of going when the request does.
    """

    _held: _HeldHead | None = None
    _released = False

    async def send(self, message: Any) -> None:
        held = self._held
        if self._released or (held is None and (self.response_started
                                                or message["type"] != "http.response.start")):
            await super().send(message)
            return
        if held is None:
            self._held = held = _HeldHead(self.transport)
            self.transport = held  # type: ignore[assignment]
        try:
            await super().send(message)
        except BaseException:
            self._release(held)
            raise
        if self.response_complete or self.chunked_encoding is not False or held.head is None:
            # Done, streaming (its head goes now), or the body went out with its head.
            self._release(held)

    def _release(self, held: _HeldHead) -> None:
        self._released = True
        held.flush()
        if self.transport is held:  # type: ignore[comparison-overlap]
            self.transport = held.transport


#: Whether uvicorn's cycles have what ``OneWriteCycle`` relies on (checked on the first one).
_usable: bool | None = None


def hold_head(cycle: Any) -> None:
    """Make uvicorn's ``cycle`` write a Content-Length answer in one write."""
    global _usable
    if type(cycle) is not RequestResponseCycle:
        return
    if _usable is None:
        _usable = all(hasattr(cycle, name) for name in _CYCLE_ATTRIBUTES)
    if _usable:
        cycle.__class__ = OneWriteCycle
