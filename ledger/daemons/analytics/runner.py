"""Running a job at most once at a time across every analytics copy, on one shared schedule.

``JobRunner.run`` takes the job's Redis lock (``SET NX`` with a token and a TTL, kept alive
while the job runs), runs it, records the run, and releases the lock only if it still holds it —
whatever the job raised. A scheduled run first checks, under the lock, when the job last
succeeded (a Redis key every copy reads), so two copies never run a daily job twice in a day;
a failed run does not count as a success, so the next tick retries it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from ledger import bus

HISTORY_LENGTH = 200

# Delete / extend the lock only while it still holds our token (it may have expired and been
# taken by another copy).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""

Work = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Job:
    """A named job: ``every_seconds`` between successful scheduled runs."""

    name: str
    every_seconds: float
    lock_seconds: int = 300


@dataclass
class JobRun:
    """One attempt: ``outcome`` is ``ok``, ``failed``, ``busy`` (another copy holds the lock)
    or ``not-due`` (another copy ran it recently)."""

    job: str
    outcome: str
    owner: str
    started_at: float = field(default_factory=time.time)
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class JobRunner:
    def __init__(self, redis: aioredis.Redis, owner: str | None = None) -> None:
        self.redis = redis
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"

    async def due(self, job: Job, now: float | None = None) -> bool:
        raw = await self.redis.get(bus.job_last_run(job.name))
        last = float(raw) if raw else 0.0
        return (now or time.time()) - last >= job.every_seconds

    async def run(self, job: Job, work: Work, *, scheduled: bool = False) -> JobRun:
        """Run ``work`` as ``job`` unless another copy holds its lock (or, when ``scheduled``,
        ran it less than ``every_seconds`` ago). Re-raises what ``work`` raised, after
        recording the failure and releasing the lock."""
        key = bus.job_lock(job.name)
        token = f"{self.owner}:{uuid.uuid4().hex}"
        if not await self.redis.set(key, token, nx=True, ex=job.lock_seconds):
            return JobRun(job.name, "busy", self.owner)
        keeper = asyncio.create_task(self._keep(key, token, job.lock_seconds),
                                     name=f"analytics-lock-{job.name}")
        try:
            if scheduled and not await self.due(job):
                return JobRun(job.name, "not-due", self.owner)
            run = JobRun(job.name, "ok", self.owner)
            began = time.monotonic()
            try:
                run.summary = await work()
            except Exception as exc:
                run.outcome, run.error = "failed", f"{type(exc).__name__}: {exc}"
                run.seconds = time.monotonic() - began
                await self._record(run)
                raise
            run.seconds = time.monotonic() - began
            await self.redis.set(bus.job_last_run(job.name), str(run.started_at))
            await self._record(run)
            return run
        finally:
            keeper.cancel()
            # Not suppress(CancelledError) around the await: that would also swallow a
            # cancellation of this task (SIGTERM) arriving right then, and the daemon would
            # never stop. gather lets that one through.
            await asyncio.gather(keeper, return_exceptions=True)
            await self.redis.eval(_RELEASE, 1, key, token)

    async def _keep(self, key: str, token: str, ttl: int) -> None:
        """Extend the lock while the job runs, so a long job is never run twice."""
        while True:
            await asyncio.sleep(max(ttl / 3, 0.5))
            await self.redis.eval(_EXTEND, 1, key, token, ttl * 1000)

    async def _record(self, run: JobRun) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(bus.JOB_HISTORY, orjson.dumps(asdict(run)))
            pipe.ltrim(bus.JOB_HISTORY, 0, HISTORY_LENGTH - 1)
            await pipe.execute()


async def history(redis: aioredis.Redis, job: str | None = None) -> list[dict[str, Any]]:
    """Recorded runs, newest first (optionally of one job)."""
    runs = [orjson.loads(raw) for raw in await redis.lrange(bus.JOB_HISTORY, 0, -1)]
    return [r for r in runs if job is None or r["job"] == job]
