"""What the ingest daemon tells Prometheus: logs accepted and rejected, the queue, the writers.

The queue figures (depth, age of the oldest entry, dead letters per project) are read from
Redis at each scrape, so every ingest copy shows the whole queue, not just what it queued.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import redis.asyncio as aioredis

from ledger.core.events import ItemError
from ledger.daemons.prometheus import LATENCY_BUCKETS, SIZE_BUCKETS, Registry
from ledger.errors import LedgerError, QueueFullError, RateLimitedError, UnavailableError
from ledger.queue.backlog import queue_status

_FIELD = re.compile(r"[a-z_]{1,32}")


def rejection_reason(error: ItemError) -> str:
    """A bounded label for an invalid log: ``invalid_<top-level field>``."""
    top = re.split(r"[.\[]", error.field or "", maxsplit=1)[0]
    return f"invalid_{top}" if _FIELD.fullmatch(top) else "invalid"


def refusal_reason(error: LedgerError) -> str:
    """Why a whole request was refused: queue_full, quota, redis or error."""
    if isinstance(error, QueueFullError):
        return "queue_full"
    if isinstance(error, RateLimitedError):
        return "quota"
    if isinstance(error, UnavailableError):
        return "redis"
    return "error"


class IngestMetrics:
    """The ingest daemon's figures on ``registry``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.logs = registry.counter(
            "ledger_ingest_logs_total",
            "Logs ingest handled: accepted (queued), or rejected with a reason (invalid_<field>"
            " for a log that broke a rule; queue_full, quota, redis for a refused request).",
            ("outcome", "reason"))
        self.queue_depth = registry.gauge(
            "ledger_queue_depth", "Logs queued and not yet stored, per project.", ("project",))
        self.queue_oldest = registry.gauge(
            "ledger_queue_oldest_entry_age_seconds",
            "Age of the oldest entry still in a project's queue (0: empty).", ("project",))
        self.dead_letters = registry.gauge(
            "ledger_queue_dead_letters", "Logs in a project's dead-letter stream.", ("project",))
        self.batch_logs = registry.histogram(
            "ledger_writer_batch_logs", "Logs per batch a writer stored.", SIZE_BUCKETS)
        self.batch_seconds = registry.histogram(
            "ledger_writer_batch_seconds", "Time a writer took to store and acknowledge a batch.",
            LATENCY_BUCKETS)
        self.writer_lag = registry.gauge(
            "ledger_writer_lag_seconds",
            "Time from enqueue to commit of the oldest log of the last batch stored.")
        self.stored = registry.counter("ledger_writer_logs_stored_total",
                                       "Logs the writers stored and acknowledged.")
        self.dead_lettered = registry.counter(
            "ledger_writer_dead_lettered_total", "Logs the writers moved to the dead letters.")
        self._redis: aioredis.Redis | None = None

    def watch_queue(self, redis: aioredis.Redis) -> None:
        """Read the queue figures from ``redis`` at each scrape."""
        self._redis = redis
        self.registry.collect(self._collect_queue)

    async def _collect_queue(self) -> None:
        if self._redis is None:
            return
        rows = await queue_status(self._redis)
        self.queue_depth.replace(({"project": r.project_id}, r.depth) for r in rows)
        self.queue_oldest.replace(({"project": r.project_id}, r.oldest_age_seconds)
                                  for r in rows)
        self.dead_letters.replace(({"project": r.project_id}, r.dead_letters) for r in rows)

    def accepted(self, count: int, errors: Sequence[ItemError]) -> None:
        """A request queued ``count`` logs; ``errors`` were rejected as invalid."""
        if count:
            self.logs.inc(count, outcome="accepted", reason="")
        for error in errors:
            self.logs.inc(outcome="rejected", reason=rejection_reason(error))

    def refused(self, count: int, errors: Sequence[ItemError], error: LedgerError) -> None:
        """A request's ``count`` valid logs were refused whole (and ``errors`` invalid)."""
        if count:
            self.logs.inc(count, outcome="rejected", reason=refusal_reason(error))
        for item in errors:
            self.logs.inc(outcome="rejected", reason=rejection_reason(item))

    def batch(self, logs: int, seconds: float, oldest_entry_ms: int, dead: int) -> None:
        """A writer stored and acknowledged a batch."""
        self.batch_logs.observe(logs)
        self.batch_seconds.observe(seconds)
        self.stored.inc(logs)
        if dead:
            self.dead_lettered.inc(dead)
        if oldest_entry_ms:
            self.writer_lag.set(max(0.0, time.time() - oldest_entry_ms / 1000))
