"""Live fan-out: one Redis subscription per project per gateway, shared by every SSE client.

    Redis ──pub/sub──► Topic (feed, project) ──offer()──► Subscription (one per SSE client)
       ▲                                                    │ bounded queue of Event | CatchUp
       └──────────── XRANGE (resume, catch-up) ◄────────────┘ next_batch() → Event | Skipped

Two feeds share the machinery. ``NOTIFICATIONS``: ingest XADDs every error to a capped
per-project stream and PUBLISHes ``{"event_id", "data"}``; the topic fans the message out as is.
``TAIL``: ingest XADDs every log while ``names.tail_watchers`` exists and only pokes the channel;
the topic reads the new entries once (XRANGE after the last it read) for all its clients.

No gap and no duplicate between replay and live: a client subscribes first (its queue buffers),
waits until Redis confirmed the SUBSCRIBE, then either replays from its ``Last-Event-ID`` or takes
the stream's newest id as its starting point; a live event whose id is not above the last id the
client got (its *watermark*) is dropped. A client that cannot keep up never slows the others:
its queue is bounded, and what does not fit is recorded in a ``CatchUp`` marker that the client,
at its own pace, fills from the capped stream; only what the stream no longer holds becomes an
explicit ``Skipped`` with the count. After a pub/sub reconnection every client catches up the
same way, so a Redis blip is not a silent gap either.

Fan-out cost: while a client's consumer waits with an empty queue, ``offer`` hands the event to
the subscription's ``direct`` writer (set by the SSE route), which writes the event's shared,
pre-encoded and pre-framed chunk to the client's socket there and then (``sse.py``, ``wire.py``).
A thousand clients then cost a thousand socket writes per event, not a thousand task wake-ups
each followed by a write, nor a thousand trips through the ASGI send chain. A client whose socket
is backed up (the write cannot finish at once) is woken instead and from then on takes the
queued path above, with its bound and its catch-up, so a slow client is still told, never
silently skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ledger.daemons.gateway.live.events import (
    HEARTBEAT,
    ZERO,
    CatchUp,
    Event,
    EventFilter,
    Feed,
    Heartbeat,
    Item,
    Skipped,
    StreamKey,
    format_stream_id,
    parse_stream_id,
)
from ledger.errors import InvalidInputError, UnavailableError
from ledger.queue import names

logger = logging.getLogger(__name__)

#: Events a client may have waiting before new ones are parked in a catch-up marker.
DEFAULT_QUEUE_SIZE = 1000
#: Entries read per XRANGE call when replaying.
_PAGE = 500
#: A topic nobody listens to stays subscribed this long, so that a reconnecting client does not
#: pay for a new SUBSCRIBE and confirmations of old and new subscriptions cannot be confused.
LINGER_SECONDS = 30.0
#: The tail-watchers key lives this long; the gateway refreshes it at a third of that.
TAIL_WATCH_TTL_SECONDS = 15
_READY_TIMEOUT_SECONDS = 5.0
CLOSING_REASON = "the gateway is shutting down; reconnect to another or in a second"
#: Pauses between retries of a failed background Redis step (doubling up to the maximum).
_RETRY_FIRST_SECONDS = 0.1
_RETRY_MAX_SECONDS = 5.0


# -- one client ---------------------------------------------------------------------------------


class DirectWrite(Protocol):
    """What the SSE route gives a subscription to write events to its client (``sse.py``)."""

    def __call__(self, events: list[Event]) -> None: ...

    def one(self, event: Event) -> None: ...


class Subscription:
    """One SSE client's view: a bounded queue, its filters, and its position per project."""

    def __init__(self, hub: Hub, feed: Feed, filters: dict[str, EventFilter],
                 queue_size: int) -> None:
        self.hub = hub
        self.feed = feed
        self.filters = filters
        self.queue_size = queue_size
        self.watermark: dict[str, StreamKey] = {}
        self.watermark_at_start: dict[str, StreamKey] = {}  # before any replay
        self._queue: deque[Event | Skipped | Heartbeat | CatchUp] = deque()
        self._events = 0  # Event items in the queue (markers do not count against the bound)
        # A bare future rather than an asyncio.Event: this is the per-client cost of fan-out.
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.close_reason = ""
        #: Writes events straight to the client while its consumer waits on an empty queue;
        #: it never raises and never waits (a write it cannot finish, it leaves to the consumer
        #: and calls ``wake``). None: every event goes through the queue.
        self.direct: DirectWrite | None = None

    @property
    def project_ids(self) -> list[str]:
        return list(self.filters)

    @property
    def backlog(self) -> int:
        """Items waiting in the queue (events and markers): 0 while written directly."""
        return len(self._queue)

    def _writes_directly(self) -> bool:
        """Whether the consumer is parked in ``next_batch`` on an empty queue (every append
        to the queue wakes it, so a pending waiter means an empty queue) with a direct writer."""
        waiter = self._waiter
        return self.direct is not None and waiter is not None and not waiter.done()

    # Called by topics, synchronously, for every event and client: O(1), never waits, and
    # the fan-out's per-client cost, hence _writes_directly inlined.
    def offer(self, event: Event) -> None:
        flt = self.filters.get(event.project_id)
        if flt is None or not flt.matches(event.level, event.log_type):
            return
        direct, waiter = self.direct, self._waiter
        if direct is not None and waiter is not None and not waiter.done():
            # What next_batch would do with it: drop what is not above the watermark.
            if event.key > self.watermark.get(event.project_id, ZERO):
                self.watermark[event.project_id] = event.key
                direct.one(event)
            return
        self._enqueue(event)

    def offer_many(self, events: list[Event]) -> None:
        """``offer`` each of ``events`` (one project's, oldest first), in one write if direct."""
        if self.direct is None or not self._writes_directly():
            for event in events:
                self.offer(event)
            return
        fresh: list[Event] = []
        for event in events:
            flt = self.filters.get(event.project_id)
            if (flt is not None and flt.matches(event.level, event.log_type)
                    and event.key > self.watermark.get(event.project_id, ZERO)):
                self.watermark[event.project_id] = event.key
                fresh.append(event)
        if fresh:
            self.direct(fresh)

    def _enqueue(self, event: Event) -> None:
        if self._events >= self.queue_size:
            self._park(event.project_id, event.key, 1)
            return
        self._queue.append(event)
        self._events += 1
        self._wake()

    def offer_skipped(self, skipped: Skipped) -> None:
        self._queue.append(skipped)
        self._wake()

    def offer_heartbeat(self) -> None:
        if not self._queue or self._queue[-1] is not HEARTBEAT:
            self._queue.append(HEARTBEAT)
            self._wake()

    def wake(self) -> None:
        """Let the consumer run: its ``next_batch`` returns (maybe empty-handed)."""
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def resync(self, project_id: str) -> None:
        """Pub/sub may have missed messages: read the stream after the watermark."""
        if project_id in self.watermark:  # else start() has yet to read the stream anyway
            self._park(project_id, None, None)

    def _park(self, project_id: str, upto: StreamKey | None, dropped: int | None) -> None:
        marker = self._queue[-1] if self._queue else None
        if not isinstance(marker, CatchUp):
            marker = CatchUp()
            self._queue.append(marker)
        if project_id in marker.upto:
            old_upto, old_dropped = marker.upto[project_id], marker.dropped[project_id]
            upto = None if old_upto is None or upto is None else max(old_upto, upto)
            dropped = None if old_dropped is None or dropped is None else old_dropped + dropped
        marker.upto[project_id] = upto
        marker.dropped[project_id] = dropped
        self._wake()

    def close(self, reason: str = "") -> None:
        """End the client's stream: its next batch is its last (``reason`` says why)."""
        self.closed = True
        self.close_reason = reason
        self._wake()

    async def start(self, resume: dict[str, StreamKey]) -> list[Item]:
        """Set the starting positions (the stream's newest id, or ``resume``); return replay.

        Called once the topics are live, so that everything after these positions either is
        in the replay or will be offered to the queue.
        """
        replay: list[Item] = []
        for project_id in self.project_ids:
            newest = await self.hub.newest_id(self.feed, project_id)
            if project_id in resume:
                # A position past the newest entry (another Redis, a clock ahead) must not
                # make the client ignore the events to come.
                self.watermark[project_id] = min(resume[project_id], newest)
                self.watermark_at_start[project_id] = self.watermark[project_id]
                replay.extend(await self._read_stream(project_id, None, None))
            else:
                self.watermark[project_id] = newest
            self.watermark_at_start[project_id] = self.watermark[project_id]
        return replay

    async def next_batch(self, timeout: float | None = None, limit: int = 200) -> list[Item]:
        """What to send next, at most ``limit`` events; waits until there is something.

        Returns [] when closed, or after ``timeout`` seconds of silence if one is given.
        """
        if not self._queue and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                if timeout is None:
                    await self._waiter
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await self._waiter
            finally:
                self._waiter = None
        out: list[Item] = []
        while self._queue and len(out) < limit:
            item = self._queue.popleft()
            if isinstance(item, Event):
                self._events -= 1
                if item.key > self.watermark.get(item.project_id, ZERO):
                    self.watermark[item.project_id] = item.key
                    out.append(item)
            elif isinstance(item, Skipped | Heartbeat):
                out.append(item)
            else:
                for project_id, upto in item.upto.items():
                    out.extend(await self._read_stream(project_id, upto,
                                                       item.dropped[project_id]))
        return out

    async def _read_stream(self, project_id: str, upto: StreamKey | None,
                           dropped: int | None) -> list[Item]:
        """Entries after the watermark (to ``upto``) that pass the filter, and what was lost."""
        start = self.watermark[project_id]
        entries = await self.hub.read_range(self.feed, project_id, start, upto)
        flt = self.filters[project_id]
        found = [e for e in entries if flt.matches(e.level, e.log_type)]
        items: list[Item] = []
        if dropped is not None:
            if len(found) < dropped:
                items.append(Skipped(project_id, dropped - len(found), "slow_client"))
        elif await self.hub.trimmed_past(self.feed, project_id, start):
            items.append(Skipped(project_id, None, "beyond_cap"))
        items.extend(found)
        if entries:
            self.watermark[project_id] = max(start, entries[-1].key)
        return items


# -- one project ------------------------------------------------------------------------------


class Topic:
    """The subscribers of one feed of one project, and its single Redis subscription."""

    def __init__(self, hub: Hub, feed: Feed, project_id: str) -> None:
        self.hub = hub
        self.feed = feed
        self.project_id = project_id
        self.channel = feed.channel(project_id)
        self.subscribers: set[Subscription] = set()
        self.ready = asyncio.Event()  # Redis confirmed the SUBSCRIBE
        self.live = asyncio.Event()  # ready, and (TAIL) the position to read from is known
        self.idle_since: float | None = None
        self.last_read: StreamKey = ZERO  # TAIL: the newest entry fanned out
        self._poke = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def publish(self, event: Event) -> None:
        for sub in self.subscribers:
            sub.offer(event)

    def publish_many(self, events: list[Event]) -> None:
        for sub in self.subscribers:
            sub.offer_many(events)

    def confirmed(self) -> None:
        """Redis confirmed a SUBSCRIBE: the first time we are live; later, we reconnected."""
        if not self.ready.is_set():
            self.ready.set()
            if not self.feed.poke_only:
                self.live.set()
            return
        logger.info("live: resubscribed to %s; catching up from the stream", self.channel)
        if self.feed.poke_only:
            self._poke.set()
        else:
            for sub in self.subscribers:
                sub.resync(self.project_id)

    def poke(self) -> None:
        self._poke.set()

    async def run_tail(self) -> None:
        """TAIL only: keep ingest feeding the stream, and fan out what it adds.

        A Redis error never ends the task (the topic would stay dead for every later client):
        it is logged and the step retried with a growing pause.
        """
        self._tasks.append(asyncio.create_task(self._keep_watching(),
                                               name=f"live-watch-{self.project_id}"))
        await self.ready.wait()
        backoff = _RETRY_FIRST_SECONDS
        while True:
            try:
                if not self.live.is_set():
                    self.last_read = await self.hub.newest_id(self.feed, self.project_id)
                    self.live.set()
                await self._poke.wait()
                self._poke.clear()
                await self._read_new()
            except RedisError as exc:
                logger.warning("live: cannot read the tail of %s (%s); retrying in %.1fs",
                               self.project_id, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _RETRY_MAX_SECONDS)
                self._poke.set()  # read what came meanwhile
                continue
            backoff = _RETRY_FIRST_SECONDS

    async def _read_new(self) -> None:
        if await self.hub.trimmed_past(self.feed, self.project_id, self.last_read):
            for sub in self.subscribers:
                sub.offer_skipped(Skipped(self.project_id, None, "beyond_cap"))
        while True:
            entries = await self.hub.read_range(self.feed, self.project_id, self.last_read,
                                                None, limit=_PAGE)
            if entries:
                self.publish_many(entries)
                self.last_read = entries[-1].key
            if len(entries) < _PAGE:
                return

    async def watch(self) -> None:
        """Tell ingest (for a while) that someone follows this project's tail."""
        await self.hub.redis.set(names.tail_watchers(self.project_id), b"1",
                                 ex=TAIL_WATCH_TTL_SECONDS)

    async def _keep_watching(self) -> None:
        while True:
            await asyncio.sleep(TAIL_WATCH_TTL_SECONDS / 3)
            if not self.subscribers:
                continue  # lingering: let ingest stop feeding the tail
            try:
                await self.watch()
            except RedisError as exc:
                logger.warning("live: cannot refresh the tail watchers of %s (%s)",
                               self.project_id, exc)

    def start_tasks(self) -> None:
        if self.feed.poke_only:
            self._tasks.append(asyncio.create_task(self.run_tail(),
                                                   name=f"live-tail-{self.project_id}"))

    async def stop_tasks(self) -> None:
        """Cancel the topic's tasks; whatever they died of is logged, never raised here."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task, outcome in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True),
                                 strict=True):
            if isinstance(outcome, Exception):
                logger.error("live: task %s had died: %r", task.get_name(), outcome)


# -- the hub ----------------------------------------------------------------------------------


class Hub:
    """All live topics of one gateway over one pub/sub connection. ``start``/``stop`` with it."""

    def __init__(self, redis: aioredis.Redis, *, queue_size: int = DEFAULT_QUEUE_SIZE,
                 linger_seconds: float = LINGER_SECONDS) -> None:
        self.redis = redis
        self.queue_size = queue_size
        self.linger_seconds = linger_seconds
        self._pubsub = redis.pubsub()
        self._topics: dict[str, Topic] = {}  # by channel
        self._lock = asyncio.Lock()  # orders SUBSCRIBE/UNSUBSCRIBE of one channel
        self._reader: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.subscriptions: set[Subscription] = set()
        self.closing = False  # no new subscription once the gateway is stopping

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_pubsub(), name="live-pubsub")
        self._reaper = asyncio.create_task(self._reap_idle(), name="live-reaper")

    def heartbeat(self) -> None:
        """Offer every client a heartbeat (it goes out once the client's queue is sent)."""
        for sub in self.subscriptions:
            sub.offer_heartbeat()

    def close_subscriptions(self) -> None:
        """End every subscription and refuse new ones: the gateway is shutting down.

        Refusing matters: clients reconnect at once, and a stream opened during the HTTP
        server's grace period would hold the shutdown until that period ran out.
        """
        self.closing = True
        for sub in list(self.subscriptions):
            sub.close(CLOSING_REASON)

    async def stop(self) -> None:
        """End every SSE stream (they return), drop the subscriptions, close the connection."""
        self.close_subscriptions()
        tasks = [task for task in (self._reader, self._reaper) if task is not None]
        for task in tasks:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                logger.error("live: a hub task had died: %r", outcome)  # wait() raised it
        for topic in list(self._topics.values()):
            await topic.stop_tasks()
        self._topics.clear()
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()

    async def wait(self) -> None:
        """Return (raising its error) if a background task dies: the gateway must then stop."""
        tasks = [task for task in (self._reader, self._reaper) if task is not None]
        if tasks:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()

    @contextlib.asynccontextmanager
    async def subscribe(self, feed: Feed, filters: dict[str, EventFilter],
                        queue_size: int | None = None) -> AsyncIterator[Subscription]:
        """A subscription to ``feed`` of the projects in ``filters``, live once entered.

        Raises:
            UnavailableError: Redis did not confirm the subscription in time, or the gateway
                is shutting down.
        """
        if self.closing:
            raise UnavailableError(CLOSING_REASON, retry_after=1, service="the gateway")
        sub = Subscription(self, feed, filters, queue_size or self.queue_size)
        topics: list[Topic] = []
        self.subscriptions.add(sub)
        try:
            for project_id in filters:
                topics.append(await self._join(feed, project_id, sub))
            try:
                async with asyncio.timeout(_READY_TIMEOUT_SECONDS):
                    for topic in topics:
                        await topic.live.wait()
            except TimeoutError:
                raise UnavailableError("Redis did not confirm the live subscription in time;"
                                       " check that Redis is up, then reconnect") from None
            yield sub
        finally:
            self.subscriptions.discard(sub)
            for topic in topics:
                topic.subscribers.discard(sub)
                if not topic.subscribers:
                    topic.idle_since = time.monotonic()

    async def _join(self, feed: Feed, project_id: str, sub: Subscription) -> Topic:
        channel = feed.channel(project_id)
        topic = self._topics.get(channel)
        if topic is None:
            topic = Topic(self, feed, project_id)
            self._topics[channel] = topic  # before any await: concurrent joins share it
            try:
                if feed.poke_only:
                    # Before SUBSCRIBE: ingest must already feed the stream when we read its tip.
                    await topic.watch()
                async with self._lock:
                    await self._pubsub.subscribe(channel)
            except (RedisError, OSError) as exc:
                del self._topics[channel]
                raise UnavailableError(f"cannot subscribe to live events ({exc});"
                                       " check that Redis is up, then reconnect") from exc
            self._connected.set()
            topic.start_tasks()
        elif feed.poke_only and not topic.subscribers:
            await topic.watch()  # it lingered unwatched: feed the tail again at once
        topic.subscribers.add(sub)
        topic.idle_since = None
        return topic

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(self.linger_seconds / 3)
            now = time.monotonic()
            for channel, topic in list(self._topics.items()):
                if topic.idle_since is not None and now - topic.idle_since > self.linger_seconds:
                    del self._topics[channel]
                    await topic.stop_tasks()
                    async with self._lock:
                        if channel not in self._topics:
                            try:
                                await self._pubsub.unsubscribe(channel)
                            except (RedisError, OSError) as exc:
                                # Harmless: a message for a topic we no longer hold is ignored.
                                logger.warning("live: cannot unsubscribe from %s (%s)",
                                               channel, exc)

    async def _read_pubsub(self) -> None:
        await self._connected.wait()  # get_message needs a subscribed connection
        backoff = 0.1
        while True:
            try:
                # A timeout rather than blocking forever: the read path also sends the periodic
                # health-check PING that notices a connection that died silently.
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                logger.warning("live: pub/sub connection lost (%s); reconnecting in %.1fs",
                               exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        topic = self._topics.get(channel.decode() if isinstance(channel, bytes) else channel)
        if topic is None:
            return
        kind = message["type"]
        if kind == "subscribe":
            topic.confirmed()
        elif kind == "message":
            if topic.feed.poke_only:
                topic.poke()
                return
            try:
                body = orjson.loads(message["data"])
                event = Event.from_data(topic.project_id, str(body["event_id"]), body["data"])
            except (orjson.JSONDecodeError, KeyError, TypeError, InvalidInputError):
                logger.warning("live: malformed notification on %s ignored", topic.channel)
                return
            topic.publish(event)

    # -- stream reads shared by topics and subscriptions --------------------------------------

    async def newest_id(self, feed: Feed, project_id: str) -> StreamKey:
        entries: Any = await self.redis.xrevrange(feed.stream(project_id), count=1)
        return parse_stream_id(_text(entries[0][0])) if entries else ZERO

    async def read_range(self, feed: Feed, project_id: str, after: StreamKey,
                         upto: StreamKey | None, limit: int | None = None) -> list[Event]:
        """Entries with ``after < id <= upto`` (to the end when ``upto`` is None), oldest first."""
        stream = feed.stream(project_id)
        events: list[Event] = []
        low = after
        while True:
            page = _PAGE if limit is None else min(_PAGE, limit - len(events))
            entries: Any = await self.redis.xrange(
                stream, min=f"({format_stream_id(low)}",
                max="+" if upto is None else format_stream_id(upto), count=page)
            for raw_id, fields in entries:
                event = _entry_event(project_id, _text(raw_id), fields)
                if event is not None:
                    events.append(event)
            if entries:
                low = parse_stream_id(_text(entries[-1][0]))
            if len(entries) < page or (limit is not None and len(events) >= limit):
                return events

    async def trimmed_past(self, feed: Feed, project_id: str, after: StreamKey) -> bool:
        """Whether entries newer than ``after`` may have been trimmed away.

        Redis 6.2 keeps no count of deleted entries, so this is inferred: with ``MAXLEN ~``
        a stream shorter than its cap has never been trimmed; a full one whose oldest entry is
        newer than ``after`` has dropped what lay between.
        """
        stream = feed.stream(project_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(stream)
            pipe.xrange(stream, count=1)
            length, oldest = await pipe.execute()
        if not oldest or int(length) < feed.cap:
            return False
        return parse_stream_id(_text(oldest[0][0])) > after


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry_event(project_id: str, entry_id: str, fields: dict[Any, Any]) -> Event | None:
    raw = fields.get(b"data", fields.get("data"))
    if raw is None:
        return None
    payload = raw.encode() if isinstance(raw, str) else raw
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        logger.warning("live: malformed entry %s of %s ignored", entry_id, project_id)
        return None
    return Event.from_data(project_id, entry_id, data, payload)
