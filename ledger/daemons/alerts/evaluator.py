"""Reading every watched project's notifications stream through the ``alerts`` consumer group.

A project is watched while it has an enabled rule. Its group is created at id 0, so that the
first read after a restart (or the first ever) starts where the group left off and nothing
ingest published is skipped; rules ignore entries older than themselves. Each batch is
evaluated in one transaction and acknowledged after the commit. Entries another copy read and
never acknowledged (it was killed) are taken over with XAUTOCLAIM once idle long enough.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from psycopg_pool import AsyncConnectionPool

from ledger import bus
from ledger.core.alerts import evaluate, rules
from ledger.core.alerts.evaluate import Notification
from ledger.core.alerts.rules import Rule
from ledger.queue.names import notifications_stream
from ledger.queue.slots import GroupReader

logger = logging.getLogger(__name__)

READ_COUNT = 200
BLOCK_MS = 1000
PARALLEL_PROJECTS = 3


def consumer_name() -> str:
    """Unique per process: a restarted daemon is a new consumer and claims the old one's."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Evaluator:
    """The event-rule loop of one alerts daemon (and the rules cache the periodic loop shares)."""

    def __init__(self, pool: AsyncConnectionPool, redis: aioredis.Redis, *,
                 refresh_seconds: float, claim_idle_seconds: float, give_up_seconds: float,
                 on_fired: Callable[[], None]) -> None:
        self.pool = pool
        self.redis = redis
        self.refresh_seconds = refresh_seconds
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.expires_after = timedelta(seconds=give_up_seconds)
        self.on_fired = on_fired
        self.consumer = consumer_name()
        self._reader = GroupReader(redis, bus.ALERTS_GROUP, self.consumer)
        self.rules: dict[str, list[Rule]] = {}
        self.rules_evaluated = 0
        self.alerts_fired = 0
        self._grouped: set[str] = set()
        self._loaded_at = 0.0
        self._claimed_at = 0.0
        #: When each project's rules were last read (wall clock, taken before the query).
        self._rules_as_of: dict[str, datetime] = {}

    async def refresh_rules(self, *, force: bool = False) -> dict[str, list[Rule]]:
        """Every enabled rule by project, reloaded at most every ``refresh_seconds``."""
        if force or time.monotonic() - self._loaded_at >= self.refresh_seconds:
            as_of = datetime.now(UTC)
            async with self.pool.connection() as conn:
                found = await rules.enabled(conn)
            by_project: dict[str, list[Rule]] = {}
            for rule in found:
                by_project.setdefault(rule.project_id, []).append(rule)
            self.rules = by_project
            self._rules_as_of = dict.fromkeys(by_project, as_of)
            self._loaded_at = time.monotonic()
            for project_id in by_project:
                await self._ensure_group(project_id)
        return self.rules

    async def _ensure_group(self, project_id: str) -> None:
        if project_id in self._grouped:
            return
        try:
            await self.redis.xgroup_create(notifications_stream(project_id),
                                           bus.ALERTS_GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._grouped.add(project_id)

    async def run(self, stopping: asyncio.Event) -> None:
        """Read, evaluate and acknowledge until ``stopping`` is set."""
        await self.refresh_rules(force=True)
        await self.step(pending=True)  # what this consumer name holds (none, unless reused)
        while not stopping.is_set():
            try:
                await self.step()
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    logger.exception("alerts: evaluation failed; retrying in 1 s")
                    await asyncio.sleep(1.0)
                    continue
                # A stream (with its group) was deleted under us: make the groups again.
                logger.warning("alerts: a notification stream lost its group; recreating")
                self._grouped.clear()
                self._loaded_at = 0.0
            except Exception:  # the loop boundary: log, pause, go on
                logger.exception("alerts: evaluation failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    async def step(self, *, pending: bool = False, block_ms: int = BLOCK_MS) -> int:
        """One read of every watched stream; the notifications evaluated."""
        watched = await self.refresh_rules()
        if not watched:
            await asyncio.sleep(min(self.refresh_seconds, block_ms / 1000))
            return 0
        done = 0
        if time.monotonic() - self._claimed_at >= max(1.0, self.claim_idle_ms / 2000):
            self._claimed_at = time.monotonic()
            for project_id in list(watched):
                done += await self._take_over(project_id)
        streams: Any = {notifications_stream(p): ("0" if pending else ">") for p in watched}
        # One read per hash slot on a Redis Cluster (every project has its own slot).
        replies: Any = await self._reader.read(streams, count=READ_COUNT,
                                               block_ms=None if pending else block_ms)
        work = []
        for stream, entries in replies or []:
            name = stream.decode() if isinstance(stream, bytes) else stream
            work.append((name.split("{p:", 1)[1].split("}", 1)[0], entries))
        # Projects are independent (one transaction each): a few at a time, so that one busy
        # project's round trips do not hold up the others.
        limit = asyncio.Semaphore(PARALLEL_PROJECTS)

        async def one(project_id: str, entries: list[Any]) -> int:
            async with limit:
                return await self._process(project_id, entries)

        counts = await asyncio.gather(*(one(p, e) for p, e in work))
        return done + sum(counts)

    async def _rules_for(self, conn: Any, project_id: str,
                         notes: list[Notification]) -> list[Rule]:
        """The project's rules as of its newest notification.

        The cache is refreshed every ``refresh_seconds``; a rule made since then must still
        see the events that followed it (a user who adds a spike rule and sends three errors
        expects the third to fire it), so a batch newer than the cache reads the project's
        rules again: one indexed query per batch, only while events keep arriving.
        """
        newest = max(n.received_at for n in notes)
        as_of = self._rules_as_of.get(project_id)
        if as_of is None or newest >= as_of:
            as_of = datetime.now(UTC)
            self.rules[project_id] = await rules.enabled_for(conn, project_id)
            self._rules_as_of[project_id] = as_of
        return self.rules[project_id]

    async def _take_over(self, project_id: str) -> int:
        stream = notifications_stream(project_id)
        reply = await self.redis.xautoclaim(stream, bus.ALERTS_GROUP, self.consumer,
                                            min_idle_time=self.claim_idle_ms, start_id="0-0",
                                            count=READ_COUNT)
        entries = reply[1] if reply else []
        return await self._process(project_id, entries) if entries else 0

    async def _process(self, project_id: str, entries: list[Any]) -> int:
        stream = notifications_stream(project_id)
        ids = [entry_id for entry_id, _ in entries]
        notes = []
        for entry_id, entry in entries:
            data = (entry or {}).get(b"data")
            note = Notification.parse(entry_id, data) if data is not None else None
            if note is not None:
                notes.append(note)
        if notes and self.rules.get(project_id):
            async with self.pool.connection() as conn, conn.transaction():
                project_rules = await self._rules_for(conn, project_id, notes)
                stats = await evaluate.evaluate_events(
                    conn, self.redis, project_id, project_rules, notes,
                    now=datetime.now(UTC), expires_after=self.expires_after)
            self.rules_evaluated += stats.rules_evaluated
            self.alerts_fired += len(stats.fired)
            if stats.fired:
                self.on_fired()
        if ids:
            await self.redis.xack(stream, bus.ALERTS_GROUP, *ids)
        return len(notes)
