"""A response with a Content-Length leaves in one socket write: its head with its body.

uvicorn's ``send`` writes the status line and headers when the app sends
``http.response.start``, and the body when it sends ``http.response.body``; uvloop writes each
at once, so every answer cost two ``write`` system calls, two TCP segments and two wake-ups of
the client. On a single-log request those writes were a fifth of the gateway's CPU
(py-spy --native, issue 17), the head's the larger part.

So the gateway's HTTP protocol wraps each request's ``send`` (``hold_head``). uvicorn still
frames the head itself, with its checks and its Content-Length bookkeeping, but into a
``_HeldHead`` standing in for the transport. When the head declares a Content-Length (the
answer is a whole body, which the client cannot use before it has it), the head waits for the
body's first write and both go out in one ``writelines``; a chunked head (a live stream, whose
client must see the head before the first event) goes out at once. A head still waiting when
the response ends without writing a body (HEAD, 204, 304), when uvicorn closes the connection
(an app that failed after starting its answer) or when ``send`` raises, is written first: the
client gets the same bytes, in the same order, in fewer segments.

It relies on uvicorn's ``RequestResponseCycle`` writing only through ``cycle.transport``
(``write``, ``close``, ``is_closing``) and on its ``send``, ``response_started``,
``response_complete`` and ``chunked_encoding``; a cycle without them keeps uvicorn's own send
(speed, never correctness). ``tests/integration/test_gateway_one_write.py`` checks the bytes on
the wire and the write count.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

_CYCLE_ATTRIBUTES = ("transport", "send", "response_started", "response_complete",
                     "chunked_encoding")

Send = Callable[[Any], Awaitable[None]]


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


def hold_head(cycle: Any) -> None:
    """Give uvicorn's ``cycle`` a ``send`` that writes a Content-Length answer in one write."""
    if not all(hasattr(cycle, name) for name in _CYCLE_ATTRIBUTES):
        return
    uvicorn_send: Send = cycle.send
    held: _HeldHead | None = None
    released = False

    async def send(message: Any) -> None:
        nonlocal held, released
        if released or (held is None and (cycle.response_started
                                          or message["type"] != "http.response.start")):
            await uvicorn_send(message)
            return
        if held is None:
            held = _HeldHead(cycle.transport)
            cycle.transport = held
        try:
            await uvicorn_send(message)
        except BaseException:
            released = True
            _release(cycle, held)
            raise
        if cycle.response_complete or cycle.chunked_encoding is not False or held.head is None:
            # Done, streaming (its head goes now), or the body went out with its head.
            released = True
            _release(cycle, held)

    cycle.send = send


def _release(cycle: Any, held: _HeldHead) -> None:
    held.flush()
    if cycle.transport is held:
        cycle.transport = held.transport
