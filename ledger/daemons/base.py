"""What every daemon is: start, serve until told to stop, stop cleanly.

``Daemon`` is the protocol, ``LoopDaemon`` the periodic kind, ``GrpcDaemon`` the shared base of
the gRPC daemons (auth, ingest, query).

``run(daemon)`` is what ``ledger serve <name>`` calls inside ``asyncio.run``: it wires SIGTERM
and SIGINT to a graceful stop, and a background task that dies stops the daemon loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from typing import TYPE_CHECKING, Protocol

from ledger.daemons.waits import wait_set

if TYPE_CHECKING:
    import grpc
    import redis.asyncio as aioredis
    from psycopg_pool import AsyncConnectionPool

    from ledger.config import Settings
    from ledger.daemons.metrics_server import MetricsServer

logger = logging.getLogger(__name__)

#: Allocations between young collections in a daemon's own process (CPython's default: 700).
GC_YOUNG_THRESHOLD = 20_000


def tune_collector() -> None:
    """Make the cyclic collector cheap for a daemon that parses JSON all day (its own process
    only: ``ledger serve`` calls it through the daemon module's ``tune_process``; never in a
    test's process or ``ledger up``'s, which host other code).

    Each request (a Sentry envelope, a log record) parses into hundreds of containers that die
    with it, so CPython's default young threshold ran a collection every request or two, each
    walking the state of every request in flight and promoting it; the promoted objects then
    set off full collections of the whole heap (py-spy --native under the Sentry bench: 4 % of
    the gateway's busy samples, 5 % of the ingest daemon's). Objects freed by reference
    counting cost the collector nothing, so a higher threshold walks the same in-flight state
    far less often, and what was built before serving (modules, the app, the daemon: alive as
    long as the process) is frozen out of the full collections' reach.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class Daemon(Protocol):
    name: str

    async def start(self) -> None:
        """Open pools and clients, bind servers. Raise LedgerError when that cannot be done."""

    async def wait(self) -> None:
        """Return when the daemon stops by itself (a background task died) — or never."""

    async def stop(self) -> None:
        """Finish or hand back in-flight work, then close everything ``start`` opened."""


class LoopDaemon:
    """A daemon whose work is ``run_once()`` called every ``interval`` seconds.

    Tests call ``run_once()`` directly; ``wait()`` runs the loop until ``stop()``.
    """

    name = "loop"
    interval = 60.0

    def __init__(self) -> None:
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        return None

    async def run_once(self) -> None:
        raise NotImplementedError

    async def wait(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception:
                logger.exception("%s: run failed; trying again in %.0fs", self.name, self.interval)
            await wait_set(self._stopping, self.interval)

    async def stop(self) -> None:
        self._stopping.set()


async def run(daemon: Daemon, *, ready_message: str | None = None) -> None:
    """Start ``daemon``, log readiness, serve until SIGTERM/SIGINT or a failure, then stop it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await daemon.start()
    metrics = None
    try:
        metrics = await start_metrics(daemon)
        if ready_message:
            logger.info("%s", ready_message)
        waiter = asyncio.create_task(daemon.wait(), name=f"{daemon.name}-wait")
        stopper = asyncio.create_task(stop.wait(), name=f"{daemon.name}-signal")
        done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            stopper.cancel()
            exc = waiter.exception()
            if exc is not None:
                raise exc
        else:
            logger.info("%s: stopping", daemon.name)
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
    finally:
        if metrics is not None:
            await metrics.stop()
        await daemon.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def start_metrics(daemon: Daemon) -> MetricsServer | None:
    """The daemon's metrics port, when ``LEDGER_<DAEMON>_METRICS_LISTEN`` is set."""
    from ledger.daemons.metrics_server import start_for

    settings = getattr(daemon, "settings", None)
    listen = getattr(settings, f"{daemon.name}_metrics_listen", None)
    return await start_for(daemon, listen)


class GrpcDaemon:
    """The shared shape of the gRPC daemons: one server, one PostgreSQL pool, one Redis client.

    Subclasses open what they need in ``start()`` (setting ``_server``, ``_pool``, ``_redis``
    and ``port``); this base stops the server with a grace period, closes the pool and Redis
    (also after a failed start, through ``_close_clients``) and reports both in ``_health``.
    """

    name = "grpc"
    #: In-flight calls get this long to finish after SIGTERM; then they are cancelled.
    stop_grace_seconds = 5.0

    def __init__(self, settings: Settings) -> None:
        from ledger.daemons.prometheus import Registry, observe_rpcs

        self.settings = settings
        self.port = 0
        #: Served on ``LEDGER_<DAEMON>_METRICS_LISTEN`` when set (``run``).
        self.metrics = Registry(self.name)
        #: Pass to ``create_server(observe=...)``: requests by RPC and status code.
        self.observe_rpcs = observe_rpcs(self.metrics)
        self._server: grpc.aio.Server | None = None
        self._pool: AsyncConnectionPool | None = None
        self._redis: aioredis.Redis | None = None
        self._stopped = asyncio.Event()

    async def wait(self) -> None:
        """Return once ``stop`` ran: gRPC serves from its own threads, nothing here can die."""
        # Not server.wait_for_termination(): cancelling that (as run() does on SIGTERM)
        # cancels grpc's own shutdown future, and the graceful stop then fails.
        await self._stopped.wait()

    async def stop(self) -> None:
        """Let in-flight calls finish (up to the grace period), then close the pool and Redis."""
        await self._stop_server()
        await self._close_clients()
        self._stopped.set()

    async def _stop_server(self) -> None:
        if self._server is not None:
            await self._server.stop(self.stop_grace_seconds)

    async def _close_clients(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _health(self) -> dict[str, str]:
        from ledger.daemons.checks import postgres_health, redis_health

        # Concurrently: the report must fit in one budget even when both are slow.
        postgres, redis = await asyncio.gather(postgres_health(self._pool),
                                               redis_health(self._redis))
        return {"postgres": postgres, "redis": redis}
