"""The queue as operators see it (``ledger queue``): depth and lag per project, dead letters
listed and replayed. Reads Redis directly; no daemon needs to run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from ledger.queue import names
from ledger.queue import rows as rows_codec
from ledger.queue.client import Queue, queue_projects
from ledger.queue.entries import EntryBuilder, as_text


def is_uuid(value: str) -> bool:
    """Whether ``value`` reads as a UUID (a project id)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ProjectQueue:
    """The queue of one project as ``ledger queue status`` shows it."""

    project_id: str
    depth: int
    length: int
    pending: int
    lag: int
    dead_letters: int
    #: Age of the oldest entry still queued (delivered or not), 0 when the queue is empty:
    #: how far behind the writers are.
    oldest_age_seconds: float = 0.0


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | str | bytes) and value not in (b"", "") else 0


async def queue_status(redis: aioredis.Redis, project_ids: Sequence[str] | None = None,
                       ) -> list[ProjectQueue]:
    """Depth, stream length, pending (delivered, not acknowledged), lag (not yet delivered)
    and dead letters of each project."""
    out: list[ProjectQueue] = []
    for project_id in project_ids if project_ids is not None else await queue_projects(redis):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(names.queue_depth(project_id))
            pipe.xlen(names.queue_stream(project_id))
            pipe.xinfo_groups(names.queue_stream(project_id))
            pipe.xlen(names.dead_letters(project_id))
            pipe.xrange(names.queue_stream(project_id), count=1)
            depth, length, groups, dead, first = await pipe.execute(raise_on_error=False)
        pending = 0
        if isinstance(groups, list):
            for group in groups:
                if as_text(group.get("name", b"")) == names.WRITER_GROUP:
                    pending = _int(group.get("pending"))
        length = _int(length)
        # Acknowledged entries are deleted, so what the stream holds beyond the pending ones has
        # not been delivered to any writer yet (Redis 6.2 has no "lag" field to ask).
        out.append(ProjectQueue(project_id, max(0, _int(depth)), length, pending,
                                max(0, length - pending), _int(dead), _age(first)))
    return out


@dataclass(frozen=True)
class WriterConsumer:
    """One writer (a consumer of the writers' group) over every project's queue stream."""

    name: str
    #: Entries delivered to it and not acknowledged: a dead writer keeps them until another
    #: writer takes them over (XAUTOCLAIM, after 30 s idle).
    pending: int
    #: Seconds since it last read any project's stream (the least over the streams).
    idle_seconds: float
    #: Streams it has read from.
    projects: int


async def writer_consumers(redis: aioredis.Redis, project_ids: Sequence[str] | None = None,
                           ) -> list[WriterConsumer]:
    """Each writer's share of the queue, busiest first: which one is behind, or gone."""
    found: dict[str, list[tuple[int, float]]] = {}
    for project_id in project_ids if project_ids is not None else await queue_projects(redis):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xinfo_consumers(names.queue_stream(project_id), names.WRITER_GROUP)
            [consumers] = await pipe.execute(raise_on_error=False)
        if not isinstance(consumers, list):  # no stream or no group yet
            continue
        for consumer in consumers:
            found.setdefault(as_text(consumer.get("name", b"")), []).append(
                (_int(consumer.get("pending")), _int(consumer.get("idle")) / 1000))
    out = [WriterConsumer(name, sum(p for p, _ in seen), round(min(i for _, i in seen), 3),
                          len(seen)) for name, seen in found.items()]
    return sorted(out, key=lambda c: (-c.pending, c.name))


def _age(first: Any) -> float:
    """Seconds since the first entry of an XRANGE answer was added (its id is a time)."""
    if not isinstance(first, list) or not first:
        return 0.0
    millis = int(as_text(first[0][0]).split("-", 1)[0])
    return max(0.0, round(time.time() - millis / 1000, 3))


@dataclass(frozen=True)
class StoredDeadLetter:
    """One entry of a dead-letter stream."""

    project_id: str
    dead_id: str
    error: str
    failed_at: str
    entry_id: str
    log: Any
    components: Any

    def to_dict(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "id": self.dead_id, "error": self.error,
                "failed_at": self.failed_at, "entry_id": self.entry_id, "log": self.log}


def _loads(raw: Any) -> Any:
    try:
        return orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return as_text(raw)


async def dead_letters(redis: aioredis.Redis, project_id: str, *, after: str = "-",
                       count: int = 1000) -> list[StoredDeadLetter]:
    """Up to ``count`` dead letters of a project, oldest first, after id ``after``."""
    low = after if after == "-" else f"({after}"
    entries: Any = await redis.xrange(names.dead_letters(project_id), min=low, max="+",
                                      count=count)
    out = []
    for dead_id, fields in entries:
        def get(name: str, f: Any = fields) -> Any:
            return f.get(name.encode(), f.get(name))

        out.append(StoredDeadLetter(
            project_id, as_text(dead_id), as_text(get("error") or b""),
            as_text(get("failed_at") or b""), as_text(get("entry_id") or b""),
            _loads(get("log")), _loads(get("components")) or {}))
    return out


async def replay_dead_letters(queue: Queue, project_id: str, *, max_depth: int,
                              ) -> tuple[int, int]:
    """Queue a project's dead letters again (the normal enqueue step, no quota, no new
    notifications); each is removed from the dead letters only once it is queued.

    Returns:
        ``(replayed, left)``: logs queued again, and dead letters that cannot be (an entry
        that was not even valid JSON stays for a person to look at).

    Raises:
        Refused: the project's queue is full; what was replayed so far stays replayed.
    """
    replayed = left = 0
    after = "-"
    while True:
        page = await dead_letters(queue.redis, project_id, after=after, count=1000)
        if not page:
            return replayed, left
        after = page[-1].dead_id
        entry = EntryBuilder(project_id)
        good = []
        for dead in page:
            try:
                record = rows_codec.record_of(dead.log)
                record["project_id"] = project_id
                if record["error_fingerprint"] and isinstance(dead.components, dict):
                    record["fingerprint_components"] = dead.components
                entry.add(record)
            except (AttributeError, KeyError, TypeError, ValueError):
                left += 1  # not a log (an unreadable entry): it stays for a person to see
                continue
            good.append(dead)
        if not good:
            continue
        await queue.enqueue(project_id, entry, max_depth=max_depth)
        await queue.redis.xdel(names.dead_letters(project_id), *[d.dead_id for d in good])
        replayed += len(good)
