"""SSE on the wire: frames, and the writer that sends a subscription's items to its client.

``LiveResponse`` is the answer of a live route; its body is written by ``write_events`` through
the ASGI ``send``, which lets the hub write an event to an idle client itself
(``DirectWriter``) instead of waking the client's task to do it: see ``hub.py``. Where the
server offers it, the hub's writes skip ``send`` for the socket itself (``wire.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse
from starlette.types import Send

from ledger.daemons.gateway.live.events import Event, Feed, Item, Skipped, StreamKey, format_cursor
from ledger.daemons.gateway.live.hub import Subscription
from ledger.daemons.gateway.live.wire import BodyChunks, chunk

logger = logging.getLogger(__name__)

#: Events written per chunk when many are waiting (fewer, larger writes under a burst).
BATCH = 200


def frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\nevent: {event}\n" if event_id is not None else f"event: {event}\n"
    # orjson never writes a raw newline, so one data line always holds the whole JSON.
    return head.encode() + b"data: " + data + b"\n\n"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shared_frame(feed: Feed, event: Event) -> bytes:
    """The frame every one-project client gets for ``event``: encoded once, then cached."""
    if not event.frame:
        event.frame = frame(feed.event, event.payload, event.id)
    return event.frame


def encode(feed: Feed, items: Sequence[Item], positions: dict[str, StreamKey]) -> bytes:
    chunks = []
    one_project = len(positions) == 1
    for item in items:
        if isinstance(item, Event):
            positions[item.project_id] = item.key
            if one_project:
                # The same bytes for every one-project client: encode once per event.
                chunks.append(shared_frame(feed, item))
            else:
                chunks.append(frame(feed.event, item.payload, format_cursor(positions)))
        elif isinstance(item, Skipped):
            chunks.append(frame("skipped", item.payload()))
        else:
            chunks.append(frame("heartbeat", orjson.dumps({"time": now()})))
    return b"".join(chunks)


class LiveResponse(StreamingResponse):
    """The SSE answer of one subscription: StreamingResponse's headers, disconnect handling
    and background task, with a body written by ``write_events`` through the ASGI ``send`` (which
    the subscription's direct writer needs) rather than drawn from an iterator."""

    def __init__(self, sub: Subscription, feed: Feed, first: bytes, replay: list[Item],
                 stack: contextlib.AsyncExitStack, raw: BodyChunks | None = None) -> None:
        self.sub, self.feed, self.first, self.replay, self.stack = sub, feed, first, replay, stack
        self.raw = raw
        self.status_code = 200
        self.media_type = "text/event-stream"
        self.background = BackgroundTask(stack.aclose)
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        await write_events(self.sub, self.feed, self.first, self.replay, self.stack, send,
                           self.raw)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class DirectWriter:
    """Writes a subscription's events to its client from the hub, without waking its task.

    With the server's ``BodyChunks`` (``wire.py``) it writes the framed chunk to the socket
    itself: for a one-project client that is the event's one shared chunk, framed once for
    every client. Without it (an in-process test transport, or a middleware that may change
    bodies) it steps the ASGI ``send`` once: the server's (uvicorn's) only waits when the socket
    is backed up, and the middleware around it never waits, so it almost always finishes there.

    Either way a write that cannot finish at once (a slow client: its socket is backed up) is
    kept and the subscription woken: its task finishes that write (``settle``) through ASGI,
    which waits for the socket, before it sends anything else, and the events that come
    meanwhile wait in the subscription's bounded queue.
    """

    def __init__(self, sub: Subscription, feed: Feed, positions: dict[str, StreamKey],
                 send: Send, raw: BodyChunks | None = None) -> None:
        self.sub, self.feed, self.positions, self.send = sub, feed, positions, send
        #: Set once the response is under way (``write_events``): before, only ``send``.
        self.raw: BodyChunks | None = None
        self._raw_offered = raw
        self._one_project = len(positions) == 1
        self._held: bytes | None = None  # a body the raw write could not write (backed up)
        self._unfinished: Generator[Any, None, None] | None = None
        self._blocked_on: Any = None  # what the unfinished send waits for
        self._error: Exception | None = None

    def go_raw(self) -> None:
        """Use the raw chunk writer from now on, if offered and the response allows it."""
        raw = self._raw_offered
        self.raw = raw if raw is not None and raw.usable() else None

    async def write(self, body: bytes) -> None:
        await self.send({"type": "http.response.body", "body": body, "more_body": True})

    def one(self, event: Event) -> None:
        """Write one event now (the hub's call for each event); never raises."""
        raw = self.raw
        if raw is None or not self._one_project:
            self([event])
            return
        self.positions[event.project_id] = event.key
        framed = event.chunk
        if not framed:
            framed = event.chunk = chunk(shared_frame(self.feed, event))
        if not raw.write(framed):
            self._hold(event.frame)

    def __call__(self, events: list[Event]) -> None:
        """Write ``events`` now; never raises (a failure is raised by the next ``settle``)."""
        body = encode(self.feed, events, self.positions)
        raw = self.raw
        if raw is not None:
            if not raw.write(chunk(body)):
                self._hold(body)
            return
        step = self.send({"type": "http.response.body", "body": body,
                          "more_body": True}).__await__()
        try:
            self._blocked_on = step.send(None)
        except StopIteration:
            return  # written: the usual case
        except Exception as exc:  # the consumer's task raises it, as if it had sent
            self._error = exc
        else:
            self._unfinished = step
        self.sub.wake()

    def _hold(self, body: bytes) -> None:
        # Once woken, the subscription queues until its task has settled, so there is one held
        # body at most; were there another, it would follow the first, in order.
        self._held = body if self._held is None else self._held + body
        self.sub.wake()

    async def settle(self) -> None:
        """Finish the write that could not finish at once, or raise what it failed with."""
        error, self._error = self._error, None
        if error is not None:
            raise error
        held, self._held = self._held, None
        if held is not None:
            await self.write(held)  # through ASGI: waits until the socket takes it
            return
        step, self._unfinished = self._unfinished, None
        if step is None:
            return
        blocked_on, self._blocked_on = self._blocked_on, None
        try:
            while True:
                # The send yielded the future it waits on (bare ``yield`` for a sleep(0)):
                # wait for it here, then resume the send where it stopped.
                if isinstance(blocked_on, asyncio.Future):
                    await asyncio.wait([blocked_on])
                else:
                    await asyncio.sleep(0)
                blocked_on = step.send(None)
        except StopIteration:
            return
        finally:
            step.close()  # a no-op once finished; ends it if we were cancelled


async def write_events(sub: Subscription, feed: Feed, first: bytes, replay: list[Item],
                       stack: contextlib.AsyncExitStack, send: Send,
                       raw: BodyChunks | None = None) -> None:
    """The whole body: ``first``, the replay, then live items until the subscription closes;
    the subscription's context (``stack``) is closed on the way out, however it ends.
    ``raw``: the server's chunk writer, for the hub's writes once the response is under way."""
    positions = dict(sub.watermark_at_start)
    writer = DirectWriter(sub, feed, positions, send, raw)
    try:
        await writer.write(first)
        writer.go_raw()
        for start in range(0, len(replay), BATCH):
            await writer.write(encode(feed, replay[start:start + BATCH], positions))
        sub.direct = writer
        while not sub.closed:
            try:
                items = await sub.next_batch(limit=BATCH)
            except (RedisError, OSError) as exc:
                # A catch-up read failed: end the stream; the client resumes from its last id.
                logger.warning("live: ending a %s stream, Redis failed while catching up: %s",
                               feed.name, exc)
                return
            await writer.settle()  # what the hub wrote meanwhile goes first
            if items:
                await writer.write(encode(feed, items, positions))
        if sub.close_reason:
            # A last word, so that the client knows the end was meant (and reconnects).
            await writer.write(frame("closing", orjson.dumps({"reason": sub.close_reason,
                                                              "time": now()})))
    finally:
        sub.direct = None
        await stack.aclose()
