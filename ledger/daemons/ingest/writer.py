"""Writers: move queued logs into PostgreSQL, exactly once in effect (DESIGN §2.4, §2.5, §10).

Each writer is one task with its own consumer name in the ``writers`` group. A round:

1. every few seconds, ``XAUTOCLAIM`` entries another consumer left pending for 30 s (it died);
2. ``XREADGROUP`` over every project stream (one per hash slot on a Redis Cluster, see
   ``ledger.queue.slots``) with one COUNT per stream, so that a project
   with a huge backlog gets the same few entries per round as a project with one (the COUNT
   is sized so that a round takes about ``LOGS_PER_STREAM`` logs of each project: 4 entries
   of 1 000 logs, or up to 64 single-log entries);
3. store the entries' rows in one transaction (``store.write``); a batch PostgreSQL refuses is
   split in halves until the offending logs are isolated; they go to the dead letters;
4. only after the commit, acknowledge: XACK + XDEL + DECRBY + dead letters, one script per
   project.

When a round found only a few logs (a trickle of single-log requests), the writer lingers a
few milliseconds before the next read, so that each round carries more entries instead of
paying a read, a COPY and an acknowledgement per log; an entry waits at most that long more.

A writer killed between 3 and 4 leaves its entries pending: they are delivered again and the
primary key makes the second write a no-op. PostgreSQL or Redis down: the writer keeps its
entries, retries with backoff and stays alive; the queue absorbs and its depth pushes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
import psycopg
import redis.asyncio as aioredis
import redis.exceptions
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ledger.core import rollups
from ledger.core.error_groups import ErrorEvent
from ledger.daemons.ingest import store
from ledger.daemons.waits import wait_set
from ledger.queue import names
from ledger.queue import rows as rows_codec
from ledger.queue.client import Ack, DeadLetter, Queue, ensure_group, queue_projects
from ledger.queue.entries import Entry, as_text, decode_entry
from ledger.queue.slots import GroupReader

logger = logging.getLogger(__name__)

#: Entries read per project stream per round when they are big (reclaims and restarts too).
ENTRIES_PER_STREAM = 4
#: The fairness knob: logs taken per project stream per round, about (a request holds up to
#: 1 000); the COUNT grows up to ``MAX_ENTRIES_PER_STREAM`` while entries are small.
LOGS_PER_STREAM = 4000
MAX_ENTRIES_PER_STREAM = 64
#: A round with fewer logs than this is followed by a pause of ``LINGER_SECONDS``, for more
#: logs per round; a lone log after a quiet spell is read at once (the read blocks).
LINGER_BELOW_LOGS = 64
LINGER_SECONDS = 0.01
#: Streams named in one XREADGROUP; with more projects, rounds rotate over them.
STREAMS_PER_READ = 256
#: Logs one round may pull into memory, judging by the biggest entry recently read: with big
#: entries a round names fewer streams (4 entries of 1 000 logs x 256 streams was a million).
MAX_LOGS_PER_ROUND = 50_000
BLOCK_MS = 500
#: Pending entries idle this long belong to a dead writer and are reclaimed.
CLAIM_IDLE_MS = 30_000
CLAIM_EVERY_SECONDS = 5.0
PROJECTS_REFRESH_SECONDS = 1.0
BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0

#: Failures that say "a server is not there right now", not "this data is wrong".
#: On a Redis Cluster also a failover in progress (CLUSTERDOWN, TRYAGAIN, redirects run out).
TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout,
             redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError,
             redis.exceptions.ClusterError, redis.exceptions.TryAgainError)
#: SQLSTATE classes that say "this data is wrong": data exception (22), integrity constraint
#: violation (23), program limit exceeded (54: an index row too large, a value too long for a
#: btree). psycopg files class 54 under OperationalError, so without this the writer took it
#: for an outage and retried the batch forever, holding back every project in it.
DATA_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})


#: Told of each batch stored: ``(logs, seconds, oldest entry's enqueue time in ms, dead)``.
BatchObserver = Callable[[int, float, int, int], None]


def caused_by_data(exc: BaseException) -> bool:
    """Whether PostgreSQL refused ``exc``'s statement because of the rows it carried."""
    return isinstance(exc, psycopg.Error) and (exc.sqlstate or "")[:2] in DATA_SQLSTATE_CLASSES


class Streams:
    """The project streams writers read, with their consumer groups; shared by the writers."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self.projects: list[str] = []
        self._grouped: set[str] = set()
        self._refreshed = 0.0
        self._offset = 0
        self._new = asyncio.Event()

    def project_queued(self, project_id: str) -> None:
        """This process queued for a project it had not seen: read its stream at once."""
        if project_id not in self._grouped:
            self._refreshed = 0.0
            self._new.set()

    async def wait_for_projects(self, timeout: float) -> None:
        """Sleep until a first project queues something (or ``timeout``)."""
        await wait_set(self._new, timeout)
        self._new.clear()

    async def refresh(self, *, force: bool = False) -> None:
        """Pick up projects that queued for the first time (at most once a second)."""
        if not force and time.monotonic() - self._refreshed < PROJECTS_REFRESH_SECONDS:
            return
        projects = await queue_projects(self._redis)
        for project_id in projects:
            if project_id not in self._grouped:
                await ensure_group(self._redis, project_id)
                self._grouped.add(project_id)
        self.projects = projects
        self._refreshed = time.monotonic()

    async def regroup(self) -> None:
        """A stream vanished (NOGROUP): create every group again."""
        self._grouped.clear()
        await self.refresh(force=True)

    def next_batch(self, limit: int = STREAMS_PER_READ) -> list[str]:
        """Up to ``limit`` projects, rotating so that every project gets turns."""
        projects = self.projects
        if len(projects) <= limit:
            return projects
        start = self._offset % len(projects)
        self._offset += limit
        return (projects[start:] + projects[:start])[:limit]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        text = exc.diag.message_primary
        detail = exc.diag.message_detail
        # "Failing row contains (...)" repeats the whole log, which the dead letter holds anyway.
        if detail and not detail.startswith("Failing row contains"):
            text += f" ({detail[:500]})"
        return f"{type(exc).__name__}: {text}"
    return f"{type(exc).__name__}: {exc}"


def _project_of(stream: bytes | str) -> str:
    # ledger:{p:<project id>}:queue
    key = stream.decode() if isinstance(stream, bytes) else stream
    return key[key.index("{p:") + 3: key.index("}")]


class Writer:
    """One writer task. ``run()`` until ``stopping`` is set; tests may call ``step()``."""

    def __init__(self, name: str, redis: aioredis.Redis, queue: Queue,
                 pool: AsyncConnectionPool, streams: Streams, *, max_attempts: int,
                 stopping: asyncio.Event, known_months: set[date] | None = None,
                 max_logs_per_round: int = MAX_LOGS_PER_ROUND,
                 on_batch: BatchObserver | None = None) -> None:
        self.name = name
        self.on_batch = on_batch
        self.redis = redis
        self.queue = queue
        self.pool = pool
        self.streams = streams
        self.max_attempts = max_attempts
        self.stopping = stopping
        self.known_months: set[date] = known_months if known_months is not None else set()
        self.claim_idle_ms = CLAIM_IDLE_MS
        self.max_logs_per_round = max_logs_per_round
        self._next_claim = 0.0
        self._failing_since: float | None = None
        self.stored = 0
        #: Entries asked per stream in the next read, and the biggest entry recently read.
        self._count = ENTRIES_PER_STREAM
        self._largest = 1000
        #: Logs the last ``read()`` returned (the loop lingers after a small one).
        self.last_read_logs = 0
        self._reader = GroupReader(redis, names.WRITER_GROUP, name)

    # -- loop -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Recover this consumer's own pending entries, then read rounds until stopped."""
        backoff = BACKOFF_FIRST_SECONDS
        recovered = False
        while not self.stopping.is_set():
            try:
                if not recovered:
                    await self.recover()
                    recovered = True
                await self.step()
                backoff = BACKOFF_FIRST_SECONDS
                if 0 < self.last_read_logs < LINGER_BELOW_LOGS:
                    # A plain sleep (no task racing ``stopping``): short enough to stop after.
                    await asyncio.sleep(LINGER_SECONDS)
            except TRANSIENT as exc:
                self._note_failure(exc)
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
            except Exception:
                # Loop boundary: a bug or an unexpected server answer must not kill the writer.
                logger.exception("ingest: writer %s: round failed; retrying", self.name)
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    async def step(self) -> int:
        """One round: reclaim abandoned entries when due, then read and store. Returns logs."""
        done = 0
        if time.monotonic() >= self._next_claim:
            claimed = await self.claim()
            # A dead writer may have left many: keep claiming each round until none are left.
            self._next_claim = 0.0 if claimed else time.monotonic() + CLAIM_EVERY_SECONDS
            if claimed:
                done += await self.handle(claimed)
        entries = await self.read()
        self.last_read_logs = sum(entry.n for entry in entries)
        if entries:
            done += await self.handle(entries)
        return done

    async def _pause(self, seconds: float) -> None:
        await wait_set(self.stopping, seconds)

    def _note_failure(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            logger.warning("ingest: writer %s: %s; keeping its entries and retrying",
                           self.name, _describe(exc))
        elif now - self._failing_since > 30:
            self._failing_since = now  # remind every 30 s, not at every retry
            logger.warning("ingest: writer %s: still failing (%s)", self.name, _describe(exc))

    def _note_success(self) -> None:
        if self._failing_since is not None:
            logger.info("ingest: writer %s: writing again", self.name)
            self._failing_since = None

    # -- reading --------------------------------------------------------------------------------

    async def read(self) -> list[Entry]:
        """New entries, at most ``ENTRIES_PER_STREAM`` from each project stream."""
        await self.streams.refresh()
        budget = self.max_logs_per_round
        per_stream = max(1, min(self._count, budget // self._largest))
        projects = self.streams.next_batch(
            max(1, min(STREAMS_PER_READ, budget // (per_stream * self._largest))))
        if not projects:
            await self.streams.wait_for_projects(BLOCK_MS / 1000)
            return []
        # One XREADGROUP on one server; one per hash slot on a Redis Cluster (``slots``).
        read = asyncio.ensure_future(self._reader.read(
            {names.queue_stream(p): ">" for p in projects}, count=per_stream, block_ms=BLOCK_MS))
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not read.done():
            # Stopping while blocked: drop the read (redis-py closes that connection). Anything
            # Redis delivered meanwhile stays pending under this name and is taken back at the
            # next start (``recover``) or by another writer (``claim``).
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError, *TRANSIENT):
                await read
            return []
        try:
            response: Any = read.result()
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.streams.regroup()
            return []
        entries = self._entries(response)
        if entries:
            self._size_count(max(entry.n for entry in entries))
        return entries

    def _size_count(self, largest: int) -> None:
        """Ask for about ``LOGS_PER_STREAM`` logs per stream next time, judging by the biggest
        entry just read; after big entries the estimate halves per read, so that a burst of
        big entries after small ones overshoots for at most a round or two."""
        self._largest = max(largest, self._largest // 2, 1)
        self._count = max(ENTRIES_PER_STREAM,
                          min(MAX_ENTRIES_PER_STREAM, LOGS_PER_STREAM // self._largest))

    def _entries(self, response: Any) -> list[Entry]:
        entries: list[Entry] = []
        for stream, items in response or ():
            project_id = _project_of(stream)
            for entry_id, fields in items:
                if fields is not None:  # Redis 6.2 shows an entry deleted while pending so
                    entries.append(decode_entry(project_id, entry_id, fields))
        return entries

    async def recover(self) -> int:
        """Store the entries this consumer name had pending when its process stopped.

        Consumer names are stable per host and port, so a restarted daemon takes its own
        unfinished entries back at once instead of waiting for ``XAUTOCLAIM``'s idle time.
        """
        await self.streams.refresh(force=True)
        done = 0
        for project_id in self.streams.projects:
            stream = names.queue_stream(project_id)
            after = "0"
            while not self.stopping.is_set():
                response: Any = await self.redis.xreadgroup(
                    names.WRITER_GROUP, self.name, {stream: after}, count=ENTRIES_PER_STREAM)
                entries = self._entries(response)
                if not entries:
                    break
                after = entries[-1].entry_id
                logger.info("ingest: writer %s took back %d unfinished entries of project %s",
                            self.name, len(entries), project_id)
                await self._load_deliveries(project_id, entries)
                done += await self.handle(entries)
        return done

    async def claim(self) -> list[Entry]:
        """Take over entries other consumers left pending longer than ``claim_idle_ms``."""
        await self.streams.refresh()
        claimed: list[Entry] = []
        projects = self.streams.projects
        for first in range(0, len(projects), STREAMS_PER_READ):
            batch = projects[first:first + STREAMS_PER_READ]
            async with self.redis.pipeline(transaction=False) as pipe:
                for project_id in batch:
                    pipe.xautoclaim(names.queue_stream(project_id), names.WRITER_GROUP, self.name,
                                    min_idle_time=self.claim_idle_ms, start_id="0-0",
                                    count=ENTRIES_PER_STREAM)
                responses: Any = await pipe.execute(raise_on_error=False)
            for project_id, response in zip(batch, responses, strict=True):
                if isinstance(response, Exception):
                    if "NOGROUP" in str(response):
                        continue  # its stream is gone: nothing to claim
                    raise response
                entries = [decode_entry(project_id, entry_id, fields)
                           for entry_id, fields in response[1] if fields is not None]
                if entries:
                    logger.info("ingest: writer %s reclaimed %d entries of project %s",
                                self.name, len(entries), project_id)
                    await self._load_deliveries(project_id, entries)
                    claimed += entries
        return claimed

    async def _load_deliveries(self, project_id: str, entries: list[Entry]) -> None:
        pending: Any = await self.redis.xpending_range(
            names.queue_stream(project_id), names.WRITER_GROUP, min=entries[0].entry_id,
            max=entries[-1].entry_id, count=len(entries) + 16, consumername=self.name)
        counts = {as_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        for entry in entries:
            entry.deliveries = counts.get(entry.entry_id, 1)

    # -- storing --------------------------------------------------------------------------------

    async def handle(self, entries: list[Entry]) -> int:
        """Store then acknowledge ``entries``, retrying each phase while servers are away.

        Returns the logs of the entries acknowledged (0 when stopped before the end: the
        entries stay pending and are delivered again).
        """
        backoff = BACKOFF_FIRST_SECONDS
        began = time.perf_counter()
        while True:
            try:
                acks = await self._store(entries)
                break
            except TRANSIENT as exc:
                self._note_failure(exc)
                if isinstance(exc, psycopg.Error):
                    await self._drop_dead_connections()
            except Exception:
                # Not the data (that is bisected): the schema, a bug. Keep the entries, retry.
                logger.exception("ingest: writer %s: storing failed; retrying", self.name)
            if self.stopping.is_set():
                return 0
            await self._keep_claimed(entries)
            await self._pause(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
        done = 0
        touched = _hours_by_project(entries)
        for project_id, project_acks in acks.items():
            while True:
                try:
                    # After the commit, before the ack: analytics recomputes these hours.
                    await rollups.mark_touched(self.redis, project_id, touched[project_id])
                    done += await self.queue.ack(project_id, project_acks)
                    break
                except TRANSIENT as exc:
                    self._note_failure(exc)
                if self.stopping.is_set():
                    return done  # stored; a later delivery finds every row present
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
        self._note_success()
        self.stored += done
        if self.on_batch is not None:
            dead = sum(len(a.dead) for project_acks in acks.values() for a in project_acks)
            self.on_batch(done, time.perf_counter() - began, _oldest_ms(entries), dead)
        return done

    async def _drop_dead_connections(self) -> None:
        """Test the pool's idle connections once a batch failed on one.

        The pool does not check a connection per checkout (a round trip per batch); after a
        PostgreSQL restart every idle connection is dead, and this drops them all at once
        instead of failing one retry per connection.
        """
        with contextlib.suppress(*TRANSIENT):
            await self.pool.check()

    async def _keep_claimed(self, entries: Sequence[Entry]) -> None:
        """Reset the idle time of entries being retried, so no other writer reclaims them."""
        by_project: dict[str, list[Any]] = defaultdict(list)
        for entry in entries:
            by_project[entry.project_id].append(entry.entry_id)
        with contextlib.suppress(*TRANSIENT):
            for project_id, ids in by_project.items():
                await self.redis.xclaim(names.queue_stream(project_id), names.WRITER_GROUP,
                                        self.name, 0, ids, justid=True)

    async def _store(self, entries: Sequence[Entry]) -> dict[str, list[Ack]]:
        """Write the entries' logs; return what to acknowledge (with dead letters) per project."""
        acks: dict[str, list[Ack]] = defaultdict(list)
        pieces: list[_Piece] = []
        components: dict[tuple[uuid.UUID, str], Any] = {}
        months: set[date] = set()
        for entry in entries:
            ack = Ack(entry.entry_id, entry.n)
            acks[entry.project_id].append(ack)
            if entry.broken is not None:
                ack.dead.append(DeadLetter(entry.broken, orjson.dumps(
                    {"project_id": entry.project_id, "entry_id": entry.entry_id})))
                logger.error("ingest: entry %s of project %s dead-lettered: %s",
                             entry.entry_id, entry.project_id, entry.broken)
                continue
            if entry.deliveries > self.max_attempts:
                error = (f"not stored after {self.max_attempts} deliveries (the writers"
                         " handling it kept dying)")
                ack.dead += [_dead(entry, i, error) for i in range(entry.n)]
                logger.error("ingest: entry %s of project %s dead-lettered: %s",
                             entry.entry_id, entry.project_id, error)
                continue
            if not entry.n:
                continue
            try:
                piece = _Piece.whole(entry, ack)
            except (TypeError, ValueError) as exc:
                ack.dead += [_dead(entry, i, f"unreadable error fields: {exc}")
                             for i in range(entry.n)]
                continue
            pieces.append(piece)
            months |= entry.months
            for fingerprint, parts in entry.components.items():
                components[(piece.project, fingerprint)] = parts
        if pieces:
            if months - self.known_months:
                async with self.pool.connection() as conn:
                    await store.ensure_partitions(conn, months, self.known_months)
            for piece, error in await self._write(pieces, components, months):
                logger.warning("ingest: a log of project %s was refused and dead-lettered: %s",
                               piece.entry.project_id, error)
                piece.ack.dead.append(_dead(piece.entry, piece.start, error))
        return acks

    async def _write(self, pieces: list[_Piece], components: dict[tuple[uuid.UUID, str], Any],
                     months: set[date], *, partition_retry: bool = True,
                     ) -> list[tuple[_Piece, str]]:
        """Store ``pieces``; return the single logs PostgreSQL refused, each with its error.

        A refused batch is split in halves until each refusal is down to one log (about
        2·log2(n) extra transactions per bad log); the others are stored.
        """
        try:
            async with self.pool.connection() as conn:
                await store.write(conn, [p.data() for p in pieces],
                                  [e for p in pieces for e in p.events], components)
            return []
        except psycopg.Error as exc:
            if not caused_by_data(exc):
                raise
            if (partition_retry and isinstance(exc, pg_errors.CheckViolation)
                    and "no partition" in str(exc)):
                # A partition this process thought it had was dropped (retention): make it again.
                self.known_months.clear()
                async with self.pool.connection() as conn:
                    await store.ensure_partitions(conn, months, self.known_months)
                return await self._write(pieces, components, months, partition_retry=False)
            if len(pieces) == 1 and pieces[0].size == 1:
                return [(pieces[0], _describe(exc))]
            first, second = _halves(pieces)
            return (await self._write(first, components, months)
                    + await self._write(second, components, months))


@dataclass
class _Piece:
    """Logs ``start`` to ``stop - 1`` of one entry, with their error events by index."""

    entry: Entry
    ack: Ack
    project: uuid.UUID
    start: int
    stop: int
    errors: list[tuple[int, ErrorEvent]]

    @classmethod
    def whole(cls, entry: Entry, ack: Ack) -> _Piece:
        project = uuid.UUID(entry.project_id)
        # Each error item starts with the index of its log in the entry.
        errors = [(int(e[0]), ErrorEvent.from_entry(project, e)) for e in entry.errors]
        return cls(entry, ack, project, 0, entry.n, errors)

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def events(self) -> list[ErrorEvent]:
        return [event for _, event in self.errors]

    def data(self) -> bytes:
        if self.start == 0 and self.stop == self.entry.n:
            return self.entry.blob
        return self.entry.rows(self.start, self.stop)

    def split(self) -> tuple[_Piece, _Piece]:
        middle = (self.start + self.stop) // 2
        return (
            _Piece(self.entry, self.ack, self.project, self.start, middle,
                   [(i, e) for i, e in self.errors if i < middle]),
            _Piece(self.entry, self.ack, self.project, middle, self.stop,
                   [(i, e) for i, e in self.errors if i >= middle]),
        )


def _halves(pieces: list[_Piece]) -> tuple[list[_Piece], list[_Piece]]:
    if len(pieces) > 1:
        middle = len(pieces) // 2
        return pieces[:middle], pieces[middle:]
    first, second = pieces[0].split()
    return [first], [second]


def _dead(entry: Entry, index: int, error: str) -> DeadLetter:
    """A dead letter for log ``index`` of ``entry``: the log as JSON, with its components."""
    try:
        log = rows_codec.decode_row(entry.row(index))
    except (ValueError, IndexError) as exc:
        return DeadLetter(f"{error}; the log itself is unreadable ({exc})", orjson.dumps(
            {"project_id": entry.project_id, "entry_id": entry.entry_id, "index": index}))
    fingerprint = log.get("error_fingerprint")
    components = entry.components.get(fingerprint) if fingerprint else None
    return DeadLetter(error, orjson.dumps(log), orjson.dumps(components or {}))


def _oldest_ms(entries: Sequence[Entry]) -> int:
    """When the oldest of ``entries`` was queued (stream ids start with milliseconds)."""
    return min((int(e.entry_id.split("-", 1)[0]) for e in entries), default=0)


def _hours_by_project(entries: Sequence[Entry]) -> dict[str, set[int]]:
    """The UTC hours each project's entries have logs in (what the rollups must recompute)."""
    hours: dict[str, set[int]] = defaultdict(set)
    for entry in entries:
        hours[entry.project_id] |= entry.hours
    return hours
