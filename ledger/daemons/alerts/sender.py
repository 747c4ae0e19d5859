"""Delivery tasks: drain the outbox, woken at once when the evaluator records an alert."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta

import httpx
from psycopg_pool import AsyncConnectionPool

from ledger.core.alerts import outbox, senders
from ledger.core.alerts.senders import Outcome
from ledger.daemons.waits import wait_set

logger = logging.getLogger(__name__)

#: How long a claimed delivery is ours: longer than any send can take (10 s timeouts).
LEASE = timedelta(seconds=60)
CLAIM_LIMIT = 20
#: The outbox is polled this often even without a wake-up (retries that came due, other copies).
POLL_SECONDS = 0.5


class Sender:
    """One delivery task."""

    def __init__(self, pool: AsyncConnectionPool, wakeup: asyncio.Event, *,
                 retry_base_seconds: float, retry_max_seconds: float,
                 claims: asyncio.Lock | None = None) -> None:
        self.pool = pool
        self.wakeup = wakeup
        #: Shared by a daemon's senders: one claims at a time. A claim takes milliseconds and
        #: up to CLAIM_LIMIT deliveries, so this costs no throughput, while idle senders
        #: polling each on its own would keep one connection (one PostgreSQL backend, 15 MiB
        #: on a laptop) busy per sender, never idle long enough for the pool to close it.
        self.claims = claims or asyncio.Lock()
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.sent = 0
        #: Attempts that did not deliver: retried later (``pending``) or given up (``failed``).
        self.unsent: dict[str, int] = {"pending": 0, "failed": 0}
        self.http: httpx.AsyncClient | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        async with senders.new_http_client() as http:
            self.http = http
            try:
                await self._loop(stopping)
            finally:
                self.http = None

    async def _loop(self, stopping: asyncio.Event) -> None:
        # Senders start together: spread their first polls over one period (see below).
        await wait_set(self.wakeup, POLL_SECONDS * random.random())  # noqa: S311
        while not stopping.is_set():
            try:
                handled = await self.step()
            except Exception:  # the loop boundary: log, pause, go on
                logger.exception("alerts: delivery failed; retrying in 1 s")
                await asyncio.sleep(1.0)
                continue
            if not handled:
                # Jittered: senders started together would otherwise poll in lockstep for
                # ever, each holding a connection at the same instant, and an idle stack
                # would keep one PostgreSQL backend per sender open.
                await wait_set(self.wakeup, POLL_SECONDS * random.uniform(0.7, 1.3))  # noqa: S311
                self.wakeup.clear()

    async def step(self) -> int:
        """Claim due deliveries and attempt each once; how many were attempted."""
        async with self.claims, self.pool.connection() as conn:
            claimed = await outbox.claim(conn, limit=CLAIM_LIMIT, lease=LEASE,
                                         now=datetime.now(UTC))
            for delivery in claimed:
                await outbox.fill_group(conn, delivery)
        for delivery in claimed:
            if delivery.channel is None:
                outcome = Outcome(False, None, "the channel was removed", "", 0.0)
            else:
                outcome = await senders.send(delivery.channel, delivery.payload,
                                             delivery.idempotency_key, http=self.http)
            async with self.pool.connection() as conn:
                status = await outbox.finish(
                    conn, delivery, outcome, now=datetime.now(UTC),
                    base_seconds=self.retry_base_seconds, max_seconds=self.retry_max_seconds)
            if status == "delivered":
                self.sent += 1
            else:
                self.unsent[status] = self.unsent.get(status, 0) + 1
                logger.warning("alerts: delivery %s to %s: %s (%s)", delivery.id,
                               delivery.channel.name if delivery.channel else "?",
                               outcome.error, status)
        return len(claimed)
