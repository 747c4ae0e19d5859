"""The ingest queue in Redis: ``Queue`` runs the scripts that change it (enqueue, tail, ack).

One stream entry holds one accepted request (up to 1 000 logs) under a project's hash tag
``{p:<project_id>}``, so that every key one script touches shares a Redis Cluster slot:

    queue stream  ──XREADGROUP (group "writers")──►  writer  ──COPY──►  PostgreSQL
         ▲                                              │
    ENQUEUE_MANY script (per request: depth + quota     └──► ACK script (XACK, XDEL, DECRBY,
    check, XADD, INCRBY, notifications, tail),               dead letters) — after the commit
    each request all or nothing

The scripts themselves, with their named arguments, are ``scripts.py``; what an entry holds is
``entries.py``; what operators see of the queue is ``backlog.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis._parsers.base import BaseParser
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from ledger.queue import names
from ledger.queue.entries import FIELDS, EntryBuilder, as_text
from ledger.queue.limits import QUOTA_TTL_SECONDS
from ledger.queue.scripts import ACK, ENQUEUE_MANY, NOTIFICATION_ENVELOPE, TAIL

logger = logging.getLogger(__name__)


class Refused(Exception):
    """The enqueue script refused a request; ``reason`` is ``queue_full`` or ``quota``."""

    def __init__(self, reason: str, value: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


@dataclass(frozen=True)
class DeadLetter:
    """A log PostgreSQL refused (or an entry that could not be delivered), with why."""

    error: str
    log: bytes
    components: bytes = b"{}"


@dataclass
class Ack:
    """What to acknowledge for one entry once its rows are committed."""

    entry_id: str
    n: int
    dead: list[DeadLetter] = field(default_factory=list)


class Queue:
    """The scripts bound to one Redis client (loaded once, run by EVALSHA)."""

    def __init__(self, redis: aioredis.Redis,
                 on_new_project: Callable[[str], None] | None = None) -> None:
        self.redis = redis
        self._on_new_project = on_new_project
        self._enqueue: AsyncScript = redis.register_script(ENQUEUE_MANY.lua)
        self._ack: AsyncScript = redis.register_script(ACK.lua)
        self._tail: AsyncScript = redis.register_script(TAIL.lua)
        self._known: set[str] = set()

    async def register_project(self, project_id: str) -> None:
        """Make the writers read this project's stream (once per process per project)."""
        if project_id not in self._known:
            await self.redis.sadd(names.QUEUE_PROJECTS, project_id)
            self._known.add(project_id)
            if self._on_new_project is not None:
                self._on_new_project(project_id)

    async def enqueue(
        self,
        project_id: str,
        entry: EntryBuilder,
        *,
        max_depth: int,
        daily_quota: int = 0,
        day: str | None = None,
        notifications: Sequence[bytes] = (),
        tail: Sequence[bytes] = (),
    ) -> tuple[str, bool]:
        """Queue ``entry`` (one request's logs) atomically; ``(entry id, tail watched)``.

        Raises:
            Refused: the queue is over ``max_depth`` or the day's quota is used up; nothing
                was queued.
            redis.exceptions.ResponseError: Redis refused a write (e.g. OOM); nothing was
                queued.
        """
        await self.register_project(project_id)
        job = Enqueue(project_id, entry, daily_quota, notifications, tail)
        keys, args = _enqueue_call(project_id, (job,), max_depth, day or _today())
        result = _enqueued(await self._enqueue(keys=keys, args=args), 1)[0]
        if isinstance(result, Exception):
            raise result
        return result

    async def enqueue_many(self, jobs: Sequence[Enqueue], *, max_depth: int,
                           day: str | None = None) -> list[tuple[str, bool] | Exception]:
        """Queue several requests in ONE Redis round trip, each atomically and on its own.

        The requests of one project are one run of the enqueue script, which takes them in
        order, each as if it came alone: checked against the depth and quota left by the ones
        before it, a refused one queueing nothing. Different projects (different Redis
        Cluster slots) are separate runs, pipelined (not a transaction).

        Returns:
            Per job, in order: ``(entry id, tail watched)``, or the ``Refused`` or Redis
            ``ResponseError`` (e.g. OOM) that job met, in which case nothing of it was
            queued (a job after one that Redis refused did not run: it gets the same error).

        Raises:
            redis.exceptions.ConnectionError / TimeoutError: Redis is unreachable (whether any
                job ran is unknown, as for a single call).
        """
        by_project: dict[str, list[int]] = {}
        for index, job in enumerate(jobs):
            by_project.setdefault(job.project_id, []).append(index)
        for project_id in by_project:
            await self.register_project(project_id)
        day = day or _today()
        runs = list(by_project.values())
        calls = [_enqueue_call(jobs[run[0]].project_id, [jobs[i] for i in run], max_depth, day)
                 for run in runs]
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for index in todo:
                keys, args = calls[index]
                # EVALSHA by hand: a pipeline's own script support asks SCRIPT EXISTS first,
                # one more round trip per call; and a cluster pipeline refuses ``evalsha()``
                # although each call here touches one slot (one project's keys).
                pipe.execute_command("EVALSHA", self._enqueue.sha, len(keys), *keys, *args)
            raw: list[Any] = await pipe.execute(raise_on_error=False)
            missing = []
            for index, reply in zip(todo, raw, strict=True):
                if isinstance(reply, NoScriptError) and attempt == 0:
                    missing.append(index)  # not run at all: safe to send again
                else:
                    replies[index] = reply
            if not missing:
                break
            await self.redis.script_load(self._enqueue.script)
            todo = missing
        out: dict[int, tuple[str, bool] | Exception] = {}
        for run, reply in zip(runs, replies, strict=True):
            # An error for the whole run (NOSCRIPT twice, a bad key type before the first
            # write) means that none of its jobs ran.
            results = ([reply] * len(run) if isinstance(reply, Exception)
                       else _enqueued(reply, len(run)))
            for index, result in zip(run, results, strict=True):
                out[index] = result
        return [out[index] for index in range(len(jobs))]

    async def feed_tail(self, project_id: str, tail: Sequence[bytes]) -> None:
        """Append logs to a project's tail stream (outside the enqueue step, see ``TAIL``)."""
        if tail:
            keys, args = TAIL.encode({"tail": names.tail_stream(project_id)},
                                     {"tail_channel": names.tail_channel(project_id),
                                      "logs": tail})
            await self._tail(keys=keys, args=args)

    async def ack(self, project_id: str, acks: Iterable[Ack]) -> int:
        """Acknowledge and delete entries, record their dead letters, decrement the depth."""
        flat: list[Any] = []
        for ack in acks:
            flat += [ack.entry_id, ack.n, len(ack.dead)]
            for dead in ack.dead:
                flat += [dead.error, dead.log, dead.components]
        if not flat:
            return 0
        keys, args = ACK.encode(
            {"queue": names.queue_stream(project_id), "depth": names.queue_depth(project_id),
             "dead_letters": names.dead_letters(project_id)},
            {"group": names.WRITER_GROUP, "failed_at": datetime.now(UTC).isoformat(),
             "acks": flat})
        return int(await self._ack(keys=keys, args=args))


@dataclass(frozen=True)
class Enqueue:
    """One request's queue step: what ``Queue.enqueue_many`` runs the enqueue script with."""

    project_id: str
    entry: EntryBuilder
    daily_quota: int = 0
    notifications: Sequence[bytes] = ()
    tail: Sequence[bytes] = ()


def _today() -> str:
    return datetime.now(UTC).strftime("%Y%m%d")


def _enqueue_call(project_id: str, jobs: Sequence[Enqueue], max_depth: int, day: str,
                  ) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one run of the enqueue script, for ``jobs`` (all of ``project_id``)."""
    head, middle, tail = NOTIFICATION_ENVELOPE
    flat: list[Any] = []
    for job in jobs:
        # The field names go once per run (``field_names``), not once per request: each
        # argument costs redis-py an encode and a join, the most of this call's CPU.
        flat += (len(job.entry.rows), job.daily_quota)
        flat += job.entry.values()
        flat.append(len(job.notifications))
        flat += job.notifications
        flat.append(len(job.tail))
        flat += job.tail
    return ENQUEUE_MANY.encode(
        {"queue": names.queue_stream(project_id), "depth": names.queue_depth(project_id),
         "quota": names.daily_quota(project_id, day),
         "notifications": names.notifications_stream(project_id),
         "tail": names.tail_stream(project_id),
         "tail_watchers": names.tail_watchers(project_id)},
        {"max_depth": max_depth, "quota_ttl": QUOTA_TTL_SECONDS,
         "notifications_channel": names.notifications_channel(project_id),
         "tail_channel": names.tail_channel(project_id),
         "envelope_head": head, "envelope_middle": middle, "envelope_tail": tail,
         "field_names": FIELDS, "jobs": flat})


def _enqueued(reply: Any, jobs: int) -> list[tuple[str, bool] | Exception]:
    """Per job, ``(entry id, watched)``, ``Refused`` or the ``ResponseError`` Redis gave it,
    from one run's reply (``ENQUEUE_MANY``: the jobs it did not reach get the error that
    stopped it)."""
    watched, view_error = int(reply[0]) == 1, reply[1]
    if view_error is not None:
        # The requests are queued; only a live view (notifications, tail) missed logs.
        logger.warning("queue: a live view missed logs of queued requests: %s",
                       as_text(view_error))
    out: list[tuple[str, bool] | Exception] = []
    for result in reply[2:]:
        status = int(result[0])
        if status == 0:
            out.append((as_text(result[1]), watched))
        elif status == 1:
            out.append(Refused("queue_full", int(result[1])))
        elif status == 2:
            out.append(Refused("quota", int(result[1])))
        else:
            error = _script_error(as_text(result[1]))
            out += [error] * (jobs - len(out))
    if len(out) != jobs:
        raise ValueError(f"the enqueue script answered {len(out)} of {jobs} jobs")
    return out


def _script_error(message: str) -> Exception:
    """The exception redis-py raises for an error reply with ``message``, from the text a
    script's ``redis.pcall`` got (Redis 6.2 puts ``@user_script: <line>: -`` before it)."""
    if message.startswith("@user_script"):
        message = message.split(": -", 1)[-1]
    error: Exception = BaseParser.parse_error(message.strip())  # type: ignore[no-untyped-call]
    return error


async def ensure_group(redis: aioredis.Redis, project_id: str) -> None:
    """Create the writers' consumer group on a project's stream (idempotent)."""
    try:
        # "0", not "$": entries queued before the group existed must be read too.
        await redis.xgroup_create(names.queue_stream(project_id), names.WRITER_GROUP, id="0",
                                  mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def queue_projects(redis: aioredis.Redis) -> list[str]:
    """Every project that ever queued a log, sorted."""
    members: Any = await redis.smembers(names.QUEUE_PROJECTS)
    return sorted(as_text(m) for m in members)


def seconds_to_midnight(now: datetime | None = None) -> int:
    """Seconds until the next UTC midnight, when the daily quota starts again (at least 1)."""
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - now).total_seconds() + 0.999))


