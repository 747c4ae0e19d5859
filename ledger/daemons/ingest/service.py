"""IngestService RPCs: parse, validate and enrich a request, then queue it in one Redis step.

The gateway hands over the decompressed body untouched; the rules of DESIGN §3 run here, once
per log (``ledger.core.events``). A body-level problem is ``InvalidInputError``; invalid items
of a batch are reported by index while the valid ones are queued. Queueing is all or nothing:
the queue-depth and daily-quota checks, the stream entry, the counters and the notifications
are one Lua script (``ledger.queue.client.Queue.enqueue``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import redis.exceptions

from ledger.config import Settings
from ledger.core import events
from ledger.core.grouping_rules import GroupingConfig
from ledger.daemons.ingest.grouping import GroupingCache
from ledger.daemons.ingest.metrics import IngestMetrics
from ledger.daemons.ingest.stream import serve_stream
from ledger.errors import (
    InvalidInputError,
    LedgerError,
    QueueFullError,
    RateLimitedError,
    UnavailableError,
)
from ledger.proto import ingest_pb2, ingest_pb2_grpc
from ledger.queue import names
from ledger.queue.client import Enqueue, Queue, Refused, seconds_to_midnight
from ledger.queue.entries import EntryBuilder, notification
from ledger.queue.limits import QUEUE_FULL_RETRY_SECONDS
from ledger.rpc.interceptors import CallObserver

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
#: Requests with bodies up to this size are prepared on the event loop; larger ones (parsing
#: and fingerprinting 10 MB of stack traces takes most of a second) in a worker thread, so
#: that the other requests and the writers sharing the loop keep being served meanwhile.
PREPARE_INLINE_BYTES = 64 * 1024
#: A century: beyond it "older than the retention" would overflow datetime arithmetic.
MAX_RETENTION_DAYS = 36_525
#: Retry-After for a request that met Redis down: a restart or failover takes seconds.
REDIS_RETRY_SECONDS = 5


@dataclass
class Prepared:
    """A request turned into a queue entry, with what was rejected and why.

    The accepted logs are ``typed`` (the common case, as tuples) or ``records`` (the general
    path's dicts); ``accepted``, ``ids`` and ``all_records`` answer for either.
    """

    total: int
    entry: EntryBuilder
    records: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[bytes] = field(default_factory=list)
    errors: list[events.ItemError] = field(default_factory=list)
    typed: events.TypedRequest | None = None

    @property
    def accepted(self) -> int:
        return len(self.typed.values) if self.typed is not None else len(self.records)

    def ids(self) -> list[str]:
        """The accepted logs' ids, in request order."""
        return self.typed.ids() if self.typed is not None else [r["id"] for r in self.records]

    def all_records(self) -> list[dict[str, Any]]:
        """The accepted logs as ``events.enrich`` records (made now on the typed path)."""
        return self.typed.records() if self.typed is not None else self.records


def _items(shape: int, body: bytes) -> list[Any]:
    """The log objects of a request body; ``InvalidInputError`` when the body itself is wrong."""
    try:
        parsed = events.parse_json_body(body)
    except events.InvalidLog as exc:
        raise InvalidInputError(exc.reason) from exc
    if shape == ingest_pb2.INGEST_SHAPE_SINGLE:
        if type(parsed) is not dict:
            raise InvalidInputError("the body must be one log: a JSON object")
        return [parsed]
    if shape == ingest_pb2.INGEST_SHAPE_BATCH:
        if type(parsed) is not dict:
            raise InvalidInputError('the body must be a JSON object: {"logs": [...]}')
        if "logs" not in parsed:
            raise InvalidInputError(f'the body needs "logs": a list of 1 to'
                                    f" {events.MAX_BATCH_ITEMS} logs")
        logs = parsed["logs"]
        # validate_batch checks the list itself too; checked here so that its error is a
        # body-level one (400 with a detail) rather than an item error.
        if type(logs) is not list or not 1 <= len(logs) <= events.MAX_BATCH_ITEMS:
            size = f", got {len(logs)}" if type(logs) is list else ""
            raise InvalidInputError(
                f"logs must be a list of 1 to {events.MAX_BATCH_ITEMS} logs{size}")
        return logs
    raise InvalidInputError("shape must be SINGLE or BATCH")


def prepare(project_id: str, shape: int, body: bytes, *, retention_days: int,
            now: datetime, grouping: GroupingConfig | None = None) -> Prepared:
    """Validate and enrich every log of a request and encode the valid ones for the queue.

    Args:
        project_id: The project (a UUID string).
        shape: ``INGEST_SHAPE_SINGLE`` or ``INGEST_SHAPE_BATCH``.
        body: The JSON body as the client sent it (decompressed).
        retention_days: The project's retention; older timestamps are rejected.
        now: The ingest time.
        grouping: The project's grouping setting (fingerprint rules, in-app, merges).

    Raises:
        InvalidInputError: The body is not JSON, not the right shape, or has too many logs.
    """
    if shape == ingest_pb2.INGEST_SHAPE_SINGLE or shape == ingest_pb2.INGEST_SHAPE_BATCH:
        typed = events.typed_records(body, single=shape == ingest_pb2.INGEST_SHAPE_SINGLE,
                                     project_id=project_id, now=now,
                                     retention_days=retention_days, grouping=grouping)
        if typed is not None:  # the common case (issue 17); None: anything else, below
            out = Prepared(total=len(typed.values), entry=EntryBuilder(project_id), typed=typed)
            out.entry.extend(typed)
            out.notifications = [notification(typed.record(i)) for i in typed.errors]
            return out
    items = _items(shape, body)
    valid, errors = events.validate_batch(items, now=now, retention_days=retention_days,
                                          max_items=events.MAX_BATCH_ITEMS, from_json=True)
    out = Prepared(total=len(items), entry=EntryBuilder(project_id), errors=errors)
    # Ids for the whole request at once (a log with its own log_id leaves its one unused).
    fresh_ids = events.uuid7_strs(len(valid))
    for clean, fresh_id in zip(valid, fresh_ids, strict=True):
        record = events.enrich(clean, project_id=project_id, now=now, grouping=grouping,
                               fresh_id=fresh_id)
        out.records.append(record)
        out.entry.add(record)
        if record["error_fingerprint"] is not None:
            out.notifications.append(notification(record))
    return out


def _message(prepared: Prepared) -> str:
    accepted = prepared.accepted
    if prepared.total == 1:
        return "log accepted" if accepted else "the log is invalid"
    if not accepted:
        return "no log of the batch is valid"
    return f"accepted {accepted} of {prepared.total} logs"


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Validates, enriches and queues logs; answers the queue depth."""

    def __init__(self, settings: Settings, queue: Queue,
                 grouping: GroupingCache | None = None,
                 metrics: IngestMetrics | None = None,
                 stopping: asyncio.Event | None = None,
                 observe: CallObserver | None = None) -> None:
        self._settings = settings
        #: The daemon's RPC metrics, told of each batch of an ingest stream.
        self._observe = observe
        #: Set when the daemon stops: the ingest streams stop reading and end.
        self._stopping = stopping or asyncio.Event()
        self._queue = queue
        self._metrics = metrics
        self._grouping = grouping or GroupingCache(None)
        # Whether each project had tail watchers at its last request: only then does a request
        # carry its logs for the tail inside the enqueue step (building them costs ~1 µs/log).
        self._watched: dict[str, bool] = {}

    async def IngestLogs(
        self, request: ingest_pb2.IngestLogsRequest, context: Context
    ) -> ingest_pb2.IngestLogsResponse:
        now = datetime.now(UTC)
        project_id = _project_id(request.project_id)
        grouping = await self._grouping.get(project_id)
        if len(request.body) > PREPARE_INLINE_BYTES:
            _, prepared = await asyncio.to_thread(self._prepare, request, now, grouping)
        else:
            _, prepared = self._prepare(request, now, grouping)
        if prepared.accepted:
            try:
                await self._enqueue(project_id, prepared, int(request.daily_quota), now)
            except LedgerError as exc:
                self._count(prepared, exc)
                raise
        self._count(prepared)
        return _response(prepared)

    def _count(self, prepared: Prepared, refused: LedgerError | None = None) -> None:
        if self._metrics is None:
            return
        if refused is None:
            self._metrics.accepted(prepared.accepted, prepared.errors)
        else:
            self._metrics.refused(prepared.accepted, prepared.errors, refused)

    async def IngestLogsMany(
        self, request: ingest_pb2.IngestLogsManyRequest, context: Context
    ) -> ingest_pb2.IngestLogsManyResponse:
        """Each request answered as ``IngestLogs`` would, with one Redis round trip for all."""
        now = datetime.now(UTC)
        results: list[ingest_pb2.IngestLogsResult | None] = []
        waiting: list[tuple[int, str, Prepared, int]] = []
        groupings = await self._grouping.get_many(
            p for p in (_valid_project_id(r.project_id) for r in request.requests) if p)
        if sum(len(r.body) for r in request.requests) > PREPARE_INLINE_BYTES:
            # One worker-thread hop for the whole call: a hop per request cost ~36 µs of CPU
            # each (a futex wake-up, a context switch and the loop's wake-up both ways), and
            # a coalesced call of 8 KB Sentry events crossed the threshold (issue 17).
            each = await asyncio.to_thread(self._prepare_each, request, now, groupings)
        else:
            each = self._prepare_each(request, now, groupings)
        for index, (item, done) in enumerate(zip(request.requests, each, strict=True)):
            if isinstance(done, LedgerError):
                results.append(_error_result(done))
                continue
            project_id, prepared = done
            if prepared.accepted:
                results.append(None)
                waiting.append((index, project_id, prepared, int(item.daily_quota)))
            else:
                self._count(prepared)
                results.append(ingest_pb2.IngestLogsResult(response=_response(prepared)))
        if waiting:
            outcomes = await self._enqueue_many(waiting, now)
            # Every None of ``results`` is in ``waiting``: the list above stays one per request.
            for (index, _, prepared, _), outcome in zip(waiting, outcomes, strict=True):
                self._count(prepared, outcome)
                results[index] = (_error_result(outcome) if outcome is not None
                                  else ingest_pb2.IngestLogsResult(response=_response(prepared)))
        return ingest_pb2.IngestLogsManyResponse(results=[r for r in results if r is not None])

    async def IngestStream(  # type: ignore[override]
        self, request_iterator: AsyncIterator[ingest_pb2.IngestStreamRequest], context: Context,
    ) -> None:
        """A gateway's batches, each answered as ``IngestLogsMany`` would (``stream.py``).

        A coroutine writing with ``context.write`` (the generated base types a generator):
        answers go out as batches finish, not in the order they came.
        """
        await serve_stream(lambda batch: self.IngestLogsMany(batch, context), context,
                           self._stopping, observe=self._observe)

    def _prepare_each(self, request: ingest_pb2.IngestLogsManyRequest, now: datetime,
                      groupings: Mapping[str, GroupingConfig],
                      ) -> list[tuple[str, Prepared] | LedgerError]:
        """Each request of a coalesced call prepared, or the error it is answered with."""
        out: list[tuple[str, Prepared] | LedgerError] = []
        for index, item in enumerate(request.requests):
            try:
                grouping = groupings.get(_valid_project_id(item.project_id) or "")
                out.append(self._prepare(item, now, grouping))
            except LedgerError as exc:
                out.append(exc)
            except Exception:
                # One bad request must not fail the others: logged here, answered "internal".
                logger.exception("ingest: request %d of a coalesced call failed", index)
                out.append(LedgerError("internal error"))
        return out

    def _prepare(self, request: ingest_pb2.IngestLogsRequest, now: datetime,
                 grouping: GroupingConfig | None = None) -> tuple[str, Prepared]:
        project_id = _project_id(request.project_id)
        retention = request.retention_days if request.retention_days > 0 else (
            self._settings.auth_retention_days)
        retention = min(retention, MAX_RETENTION_DAYS)
        return project_id, prepare(project_id, request.shape, request.body,
                                   retention_days=retention, now=now, grouping=grouping)

    async def GetQueueDepth(
        self, request: ingest_pb2.GetQueueDepthRequest, context: Context
    ) -> ingest_pb2.GetQueueDepthResponse:
        project_id = _project_id(request.project_id)
        try:
            depth: Any = await self._queue.redis.get(names.queue_depth(project_id))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise UnavailableError(f"Redis is unavailable: {exc}", service="Redis",
                                   retry_after=REDIS_RETRY_SECONDS) from exc
        return ingest_pb2.GetQueueDepthResponse(project_id=project_id,
                                                queue_depth=max(0, int(depth or 0)))

    async def _enqueue(self, project_id: str, prepared: Prepared, quota: int,
                       now: datetime) -> None:
        watched_before = self._watched.get(project_id, False)
        tail = _tail(prepared.all_records()) if watched_before else []
        try:
            _, watched = await self._queue.enqueue(
                project_id, prepared.entry, max_depth=self._settings.queue_max_depth,
                daily_quota=quota, day=now.strftime("%Y%m%d"),
                notifications=prepared.notifications, tail=tail)
        except Refused as refused:
            raise self._refusal(refused, quota, now) from None
        except redis.exceptions.RedisError as exc:
            raise _redis_error(exc) from exc
        await self._after_enqueue(project_id, prepared, watched_before, watched)

    async def _enqueue_many(self, waiting: Sequence[tuple[int, str, Prepared, int]],
                            now: datetime) -> list[LedgerError | None]:
        """Queue each waiting request on its own (one round trip); its error or None."""
        watched_before = [self._watched.get(project_id, False)
                          for _, project_id, _, _ in waiting]
        jobs = [Enqueue(project_id, prepared.entry, quota, prepared.notifications,
                        _tail(prepared.all_records()) if before else [])
                for (_, project_id, prepared, quota), before in zip(waiting, watched_before,
                                                                    strict=True)]
        try:
            outcomes = await self._queue.enqueue_many(
                jobs, max_depth=self._settings.queue_max_depth, day=now.strftime("%Y%m%d"))
        except redis.exceptions.RedisError as exc:
            error = _redis_error(exc)
            return [error] * len(waiting)
        errors: list[LedgerError | None] = []
        for (_, project_id, prepared, quota), before, outcome in zip(
                waiting, watched_before, outcomes, strict=True):
            if isinstance(outcome, Refused):
                errors.append(self._refusal(outcome, quota, now))
            elif isinstance(outcome, redis.exceptions.RedisError):
                errors.append(_redis_error(outcome))
            elif isinstance(outcome, Exception):
                # Not a Redis answer: a bug. Only this request fails; the others were queued.
                logger.error("ingest: enqueue of a coalesced request failed: %r", outcome)
                errors.append(LedgerError("internal error"))
            else:
                errors.append(None)
                await self._after_enqueue(project_id, prepared, before, outcome[1])
        return errors

    async def _after_enqueue(self, project_id: str, prepared: Prepared, watched_before: bool,
                             watched: bool) -> None:
        self._watched[project_id] = watched
        if watched and not watched_before:
            # The logs are queued: the tail is a view, and its failure must not fail the request
            # (the client would send the logs again).
            try:
                await self._queue.feed_tail(project_id, _tail(prepared.all_records()))
            except redis.exceptions.RedisError as exc:
                logger.warning("ingest: the tail of project %s missed %d logs: %s",
                               project_id, prepared.accepted, exc)

    def _refusal(self, refused: Refused, quota: int, now: datetime) -> LedgerError:
        if refused.reason == "quota":
            return RateLimitedError(
                f"the project's daily quota of {quota} logs is used up ({refused.value}"
                " accepted today); it starts again at midnight UTC",
                retry_after=seconds_to_midnight(now))
        return QueueFullError(
            f"the project's queue holds {refused.value} logs waiting to be stored (the limit"
            f" is {self._settings.queue_max_depth}); retry in a minute",
            retry_after=QUEUE_FULL_RETRY_SECONDS)


def _redis_error(exc: redis.exceptions.RedisError) -> UnavailableError:
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return UnavailableError(f"Redis is unavailable ({exc}); retry the request",
                                retry_after=REDIS_RETRY_SECONDS, service="Redis")
    # E.g. OOM under `maxmemory-policy noeviction`: the queue step was refused whole.
    return UnavailableError(f"Redis refused the queue step, nothing was queued: {exc}",
                            retry_after=QUEUE_FULL_RETRY_SECONDS, service="Redis")


def _response(prepared: Prepared) -> ingest_pb2.IngestLogsResponse:
    return ingest_pb2.IngestLogsResponse(
        accepted=prepared.accepted,
        rejected=len(prepared.errors),
        errors=[ingest_pb2.ItemError(index=e.index, field=e.field, reason=e.reason)
                for e in prepared.errors],
        message=_message(prepared),
        ids=prepared.ids(),
    )


def _error_result(error: LedgerError) -> ingest_pb2.IngestLogsResult:
    return ingest_pb2.IngestLogsResult(error_code=error.code, error_message=error.message,
                                       retry_after=error.retry_after or 0)


def _tail(records: Sequence[dict[str, Any]]) -> list[bytes]:
    return [notification(r) for r in records]


@functools.lru_cache(maxsize=4096)
def _valid_project_id(raw: str) -> str | None:
    # Cached: every request of a coalesced call parses its project id twice, and a gateway
    # sends the same few projects' ids over and over (issue 17: per-request CPU).
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def _project_id(raw: str) -> str:
    project_id = _valid_project_id(raw)
    if project_id is None:
        raise InvalidInputError(f"project_id must be a UUID, got {raw[:64]!r}")
    return project_id
