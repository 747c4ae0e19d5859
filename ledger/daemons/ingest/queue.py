"""The ingest queue in Redis: the two Lua scripts that change it, and its key helpers.

One stream entry holds one accepted request (up to 1 000 logs) under a project's hash tag
``{p:<project_id>}``, so that every key one script touches shares a Redis Cluster slot:

    queue stream  ──XREADGROUP (group "writers")──►  writer  ──COPY──►  PostgreSQL
         ▲                                              │
    ENQUEUE script (depth + quota check, XADD,          └──► ACK script (XACK, XDEL, DECRBY,
    INCRBY, notifications, tail) — all or nothing            dead letters) — after the commit

What an entry holds is ``entries.py``; what operators see of the queue is ``backlog.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from ledger import bus
from ledger.daemons.ingest.entries import EntryBuilder, as_text

#: Newest error notifications kept per project (the SSE replay window, DESIGN §7).
NOTIFICATIONS_MAXLEN = 1000
#: Newest logs kept per project for ``GET /logs/tail``.
TAIL_MAXLEN = 2000
#: A day's quota counter outlives its day a little, so that "today" is never lost at midnight.
QUOTA_TTL_SECONDS = 2 * 86_400

# -- scripts ------------------------------------------------------------------------------------

# KEYS: queue, depth, quota, notifications, tail, tail watchers.
# ARGV: n, max depth, quota (<= 0: none), quota TTL, notifications channel, tail channel,
#       f, then f values (the entry's field names and values), k, k notification JSONs, then
#       the tail JSONs (if any).
# Returns {0, entry id, watched} | {1, depth} (queue full) | {2, used} (quota).
_ENQUEUE = """
local n = tonumber(ARGV[1])
local depth = tonumber(redis.call('GET', KEYS[2]) or '0')
if depth + n > tonumber(ARGV[2]) then return {1, depth} end
local quota = tonumber(ARGV[3])
if quota > 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0')
  if used + n > quota then return {2, used} end
end
local f = tonumber(ARGV[7])
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 8, 7 + f))
redis.call('INCRBY', KEYS[2], n)
if redis.call('INCRBY', KEYS[3], n) == n then redis.call('EXPIRE', KEYS[3], ARGV[4]) end
local k = tonumber(ARGV[8 + f])
for i = 9 + f, 8 + f + k do
  local eid = redis.call('XADD', KEYS[4], 'MAXLEN', '~', @NOTIFICATIONS_MAXLEN@, '*',
                         'data', ARGV[i])
  redis.call('PUBLISH', ARGV[5], '{"event_id":"' .. eid .. '","data":' .. ARGV[i] .. '}')
end
local watched = redis.call('EXISTS', KEYS[6])
if watched == 1 and #ARGV > 8 + f + k then
  local last
  for i = 9 + f + k, #ARGV do
    last = redis.call('XADD', KEYS[5], 'MAXLEN', '~', @TAIL_MAXLEN@, '*', 'data', ARGV[i])
  end
  redis.call('PUBLISH', ARGV[6], last)
end
return {0, id, watched}
"""

# KEYS: tail.  ARGV: tail channel, then one JSON per log. For a request whose enqueue found the
# first tail watcher: the queue step is done, the tail (a view, not the record) catches up.
_TAIL = """
local last
for i = 2, #ARGV do
  last = redis.call('XADD', KEYS[1], 'MAXLEN', '~', @TAIL_MAXLEN@, '*', 'data', ARGV[i])
end
if last then redis.call('PUBLISH', ARGV[1], last) end
return last
"""

# KEYS: queue, depth, dead letters.  ARGV: group, failed_at, then per entry:
#   entry id, n, d, and d triples (error, log JSON, components JSON).
# An entry is acknowledged, deleted and its dead letters recorded only if this XACK removed it
# from the pending list: two writers that stored the same entry (one of them reclaimed it) never
# decrement the depth twice nor dead-letter a log twice. Returns the logs decremented.
_ACK = """
local group = ARGV[1]
local i = 3
local done = 0
while i <= #ARGV do
  local id, n, d = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local mine = redis.call('XACK', KEYS[1], group, id) == 1
  if mine then
    redis.call('XDEL', KEYS[1], id)
    done = done + n
  end
  for j = 0, d - 1 do
    local at = i + 3 + 3 * j
    if mine then
      redis.call('XADD', KEYS[3], '*', 'error', ARGV[at], 'log', ARGV[at + 1],
                 'components', ARGV[at + 2], 'entry_id', id, 'failed_at', ARGV[2])
    end
  end
  i = i + 3 + 3 * d
end
if done > 0 and redis.call('DECRBY', KEYS[2], done) < 0 then redis.call('SET', KEYS[2], 0) end
return done
"""



def _lua(script: str) -> str:
    return (script.replace("@NOTIFICATIONS_MAXLEN@", str(NOTIFICATIONS_MAXLEN))
            .replace("@TAIL_MAXLEN@", str(TAIL_MAXLEN)))


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
        self._enqueue: AsyncScript = redis.register_script(_lua(_ENQUEUE))
        self._ack: AsyncScript = redis.register_script(_ACK)
        self._tail: AsyncScript = redis.register_script(_lua(_TAIL))
        self._known: set[str] = set()

    async def register_project(self, project_id: str) -> None:
        """Make the writers read this project's stream (once per process per project)."""
        if project_id not in self._known:
            await self.redis.sadd(bus.QUEUE_PROJECTS, project_id)
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
        """
        await self.register_project(project_id)
        job = Enqueue(project_id, entry, daily_quota, notifications, tail)
        keys, args = _enqueue_call(job, max_depth, day or _today())
        return _enqueued(await self._enqueue(keys=keys, args=args))

    async def enqueue_many(self, jobs: Sequence[Enqueue], *, max_depth: int,
                           day: str | None = None) -> list[tuple[str, bool] | Exception]:
        """Queue several requests in ONE Redis round trip, each atomically and on its own.

        Every job is its own run of the enqueue script (a pipeline, not a transaction): each
        is checked against the depth and quota left by the ones before it, exactly as if the
        requests had come one after the other, and a refused job queues nothing.

        Returns:
            Per job, in order: ``(entry id, tail watched)``, or the ``Refused`` or Redis
            ``ResponseError`` (e.g. OOM) that job met.

        Raises:
            redis.exceptions.ConnectionError / TimeoutError: Redis is unreachable (whether any
                job ran is unknown, as for a single call).
        """
        for project_id in {job.project_id for job in jobs}:
            await self.register_project(project_id)
        day = day or _today()
        calls = [_enqueue_call(job, max_depth, day) for job in jobs]
        results: list[Any] = [None] * len(jobs)
        todo = list(range(len(jobs)))
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for index in todo:
                keys, args = calls[index]
                # EVALSHA by hand: a pipeline's own script support asks SCRIPT EXISTS first,
                # one more round trip per call.
                pipe.evalsha(self._enqueue.sha, len(keys), *keys, *args)
            raw: list[Any] = await pipe.execute(raise_on_error=False)
            missing = []
            for index, result in zip(todo, raw, strict=True):
                if isinstance(result, NoScriptError) and attempt == 0:
                    missing.append(index)  # not run at all: safe to send again
                else:
                    results[index] = result
            if not missing:
                break
            await self.redis.script_load(self._enqueue.script)
            todo = missing
        out: list[tuple[str, bool] | Exception] = []
        for result in results:
            if isinstance(result, Exception):
                out.append(result)
                continue
            try:
                out.append(_enqueued(result))
            except Refused as refused:
                out.append(refused)
        return out

    async def feed_tail(self, project_id: str, tail: Sequence[bytes]) -> None:
        """Append logs to a project's tail stream (outside the enqueue step, see ``_TAIL``)."""
        if tail:
            await self._tail(keys=[bus.tail_stream(project_id)],
                             args=[bus.tail_channel(project_id), *tail])

    async def ack(self, project_id: str, acks: Iterable[Ack]) -> int:
        """Acknowledge and delete entries, record their dead letters, decrement the depth."""
        args: list[Any] = [bus.WRITER_GROUP, datetime.now(UTC).isoformat()]
        for ack in acks:
            args += [ack.entry_id, ack.n, len(ack.dead)]
            for dead in ack.dead:
                args += [dead.error, dead.log, dead.components]
        if len(args) == 2:
            return 0
        keys = [bus.queue_stream(project_id), bus.queue_depth(project_id),
                bus.dead_letters(project_id)]
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


def _enqueue_call(job: Enqueue, max_depth: int, day: str) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the enqueue script for ``job``."""
    project_id = job.project_id
    fields = [part for pair in job.entry.fields().items() for part in pair]
    keys = [bus.queue_stream(project_id), bus.queue_depth(project_id),
            bus.daily_quota(project_id, day), bus.notifications_stream(project_id),
            bus.tail_stream(project_id), bus.tail_watchers(project_id)]
    args: list[Any] = [
        len(job.entry.rows), max_depth, job.daily_quota, QUOTA_TTL_SECONDS,
        bus.notifications_channel(project_id), bus.tail_channel(project_id),
        len(fields), *fields, len(job.notifications), *job.notifications, *job.tail,
    ]
    return keys, args


def _enqueued(result: Any) -> tuple[str, bool]:
    """``(entry id, watched)`` from the script's answer; ``Refused`` when it refused."""
    status = int(result[0])
    if status == 1:
        raise Refused("queue_full", int(result[1]))
    if status == 2:
        raise Refused("quota", int(result[1]))
    return as_text(result[1]), int(result[2]) == 1


async def ensure_group(redis: aioredis.Redis, project_id: str) -> None:
    """Create the writers' consumer group on a project's stream (idempotent)."""
    try:
        # "0", not "$": entries queued before the group existed must be read too.
        await redis.xgroup_create(bus.queue_stream(project_id), bus.WRITER_GROUP, id="0",
                                  mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def queue_projects(redis: aioredis.Redis) -> list[str]:
    """Every project that ever queued a log, sorted."""
    members: Any = await redis.smembers(bus.QUEUE_PROJECTS)
    return sorted(as_text(m) for m in members)


def seconds_to_midnight(now: datetime | None = None) -> int:
    """Seconds until the next UTC midnight, when the daily quota starts again (at least 1)."""
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - now).total_seconds() + 0.999))


