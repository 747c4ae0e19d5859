"""Lifecycle of the alerts daemon: one pool, one Redis client, one gRPC server, its loops.

Loops (named tasks; one that dies stops the daemon loudly):

* ``alerts-events``: the notification streams → new_group, regression, group_frequency rules;
* ``alerts-periodic``: error_rate and no_logs rules every interval (one copy per interval, by
  a Redis lock);
* ``alerts-sender-N``: the outbox (``LEDGER_ALERTS_SENDERS`` of them; 0 = evaluate only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

from ledger import bus
from ledger.config import Settings
from ledger.core.alerts import evaluate
from ledger.daemons.alerts.evaluator import Evaluator
from ledger.daemons.alerts.sender import Sender
from ledger.daemons.alerts.servicer import AlertsServicer
from ledger.daemons.base import GrpcDaemon
from ledger.daemons.checks import require_schema
from ledger.daemons.waits import wait_set
from ledger.db.pool import async_pool, open_pool
from ledger.proto import alerts_pb2_grpc
from ledger.rpc.server import bind, create_server

logger = logging.getLogger(__name__)

GRACE_SECONDS = 1.5
#: How often the daemon logs what it evaluated and sent (operators, and bench/bench_alerts.py).
STATS_EVERY_SECONDS = 10.0


class AlertsDaemon(GrpcDaemon):
    """Serves ``AlertsService`` on ``LEDGER_ALERTS_LISTEN`` and runs the alert loops."""

    name = "alerts"
    stop_grace_seconds = GRACE_SECONDS

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.evaluator: Evaluator | None = None
        self.senders: list[Sender] = []
        self.periodic_evaluated = 0
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        settings = self.settings
        settings.require("logs_database_url", "redis_url", "internal_token")
        assert settings.logs_database_url and settings.redis_url
        await require_schema(settings.logs_database_url, "logs")
        # No check per checkout (a round trip each): every loop retries a failed step, and a
        # connection that died with a PostgreSQL restart is dropped when it fails.
        pool = async_pool(settings.logs_database_url, name="alerts-logs",
                          min_size=2, max_size=5 + settings.alerts_senders, check=False,
                          idle_seconds=settings.db_pool_idle_seconds)
        self._pool = pool
        await open_pool(pool, settings.logs_database_url)
        self._redis = bus.client(settings.redis_url)
        self.evaluator = Evaluator(
            pool, self._redis, refresh_seconds=settings.alerts_rules_refresh_seconds,
            claim_idle_seconds=settings.alerts_claim_idle_seconds,
            give_up_seconds=settings.alerts_give_up_seconds, on_fired=self._wakeup.set)
        claims = asyncio.Lock()
        self.senders = [Sender(pool, self._wakeup,
                               retry_base_seconds=settings.alerts_retry_base_seconds,
                               retry_max_seconds=settings.alerts_retry_max_seconds,
                               claims=claims)
                        for _ in range(settings.alerts_senders)]
        self._server = create_server("alerts", settings.internal_token, self._health,
                                     observe=self.observe_rpcs,
                                     also_accepted=settings.tokens_also_accepted())
        self._watch_alert_counts()
        alerts_pb2_grpc.add_AlertsServiceServicer_to_server(AlertsServicer(pool), self._server)
        self.port = bind(self._server, settings.alerts_listen, "alerts")
        await self._server.start()
        self._tasks = [
            asyncio.create_task(self.evaluator.run(self._stopping), name="alerts-events"),
            asyncio.create_task(self._periodic(), name="alerts-periodic"),
            asyncio.create_task(self._stats(), name="alerts-stats"),
            *(asyncio.create_task(s.run(self._stopping), name=f"alerts-sender-{i}")
              for i, s in enumerate(self.senders)),
        ]
        logger.info("alerts: serving on port %d with %d senders", self.port, len(self.senders))

    def _watch_alert_counts(self) -> None:
        """Alerts fired, sent and not sent, read from the loops' own counts at each scrape."""
        fired = self.metrics.counter("ledger_alerts_fired_total",
                                     "Alerts the rules fired (one per rule and group).")
        evaluated = self.metrics.counter("ledger_alerts_rule_evaluations_total",
                                         "Rule evaluations, on events and periodic.", ("kind",))
        sent = self.metrics.counter("ledger_alerts_sent_total",
                                    "Alert deliveries a channel acknowledged.")
        failed = self.metrics.counter(
            "ledger_alerts_failed_total",
            "Delivery attempts that failed: pending (retried later) or failed (given up).",
            ("status",))

        async def collect() -> None:
            if self.evaluator is not None:
                fired.set_total(self.evaluator.alerts_fired)
                evaluated.set_total(self.evaluator.rules_evaluated, kind="events")
            evaluated.set_total(self.periodic_evaluated, kind="periodic")
            sent.set_total(sum(s.sent for s in self.senders))
            for status in ("pending", "failed"):
                failed.set_total(sum(s.unsent.get(status, 0) for s in self.senders),
                                 status=status)

        self.metrics.collect(collect)

    async def run_periodic_once(self) -> int:
        """Count error_rate and no_logs rules now (if this copy holds the interval's lock)."""
        assert self._pool is not None and self._redis is not None
        assert self.evaluator is not None
        interval = self.settings.alerts_interval_seconds
        lock = await self._redis.set(bus.alerts_lock("periodic"), str(time.time()), nx=True,
                                    px=max(1, int(interval * 900)))
        if not lock:
            return 0
        by_project = await self.evaluator.refresh_rules()
        evaluated = 0
        for project_rules in by_project.values():
            wanted = [r for r in project_rules if r.kind in ("error_rate", "no_logs")]
            if not wanted:
                continue
            async with self._pool.connection() as conn, conn.transaction():
                stats = await evaluate.evaluate_periodic(
                    conn, wanted, now=datetime.now(UTC), interval_seconds=interval,
                    expires_after=timedelta(seconds=self.settings.alerts_give_up_seconds))
            evaluated += stats.rules_evaluated
            if stats.fired:
                self._wakeup.set()
        self.periodic_evaluated += evaluated
        return evaluated

    async def _periodic(self) -> None:
        interval = self.settings.alerts_interval_seconds
        while not self._stopping.is_set():
            try:
                await self.run_periodic_once()
            except Exception:  # the loop boundary: log, and try at the next interval
                logger.exception("alerts: periodic rules failed")
            await wait_set(self._stopping, interval)

    async def _stats(self) -> None:
        """One log line per period with the work done in it (nothing when idle)."""
        assert self.evaluator is not None
        last = (0, 0, 0, 0)
        started = time.monotonic()
        while not self._stopping.is_set():
            await wait_set(self._stopping, STATS_EVERY_SECONDS)
            now = (self.evaluator.rules_evaluated, self.periodic_evaluated,
                   self.evaluator.alerts_fired, sum(s.sent for s in self.senders))
            elapsed, started = time.monotonic() - started, time.monotonic()
            if now != last:
                events, periodic, fired, sent = (a - b for a, b in zip(now, last, strict=True))
                logger.info("alerts: %d rule evaluations (%d on events, %d periodic) in %.1f s"
                            " = %.0f/s; %d alerts fired, %d deliveries sent", events + periodic,
                            events, periodic, elapsed, (events + periodic) / elapsed, fired,
                            sent)
            last = now

    async def wait(self) -> None:
        """Return when a loop died (raising its error) or once ``stop`` ran."""
        stopper = asyncio.create_task(self._stopping.wait(), name="alerts-stopping")
        try:
            done, _ = await asyncio.wait({*self._tasks, stopper},
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise RuntimeError(f"{task.get_name()} stopped") from task.exception()

    async def stop(self) -> None:
        """Stop the loops (an unfinished batch stays pending for the next reader), then close."""
        self._stopping.set()
        await self._stop_server()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._close_clients()
        self._stopped.set()
