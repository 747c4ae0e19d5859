"""IngestDaemon: the IngestService gRPC server and/or ``LEDGER_INGEST_WRITERS`` writer tasks.

``LEDGER_INGEST_ROLE`` (``ledger serve ingest --role``) says which: ``api`` accepts, validates
and queues; ``writer`` only runs the writers, so they scale on their own processes and cores;
``all`` does both in one process (one event loop), as a small installation wants.

A writer process still binds a gRPC port, serving only the health check: it is how ``ledger
up`` and an orchestrator see it alive, and its ``host:port`` is the process's identity in the
consumer group (ports are bound without SO_REUSEPORT, so two live processes on one host never
share one), stable across a restart on the same address so that a restarted writer takes
back its own pending entries at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import date

from ledger.config import Settings
from ledger.core.connections import connect_redis
from ledger.daemons.base import GrpcDaemon
from ledger.daemons.ingest.grouping import GroupingCache
from ledger.daemons.ingest.metrics import IngestMetrics
from ledger.daemons.ingest.service import IngestServicer
from ledger.daemons.ingest.writer import Streams, Writer
from ledger.db import migrate
from ledger.db.pool import async_pool, connect
from ledger.errors import ConfigError, UnavailableError
from ledger.proto import ingest_pb2_grpc
from ledger.queue.client import Queue
from ledger.rpc.server import bind, create_server

logger = logging.getLogger(__name__)

#: In-flight calls get this long to finish after SIGTERM.
STOP_GRACE_SECONDS = 5.0
#: Writers get this long to finish their batch after SIGTERM; unfinished entries stay pending.
STOP_WRITERS_SECONDS = 20.0


def _check_schema(url: str) -> None:
    """Refuse to start on a logs database without its migrations; tolerate one that is down."""
    try:
        conn = connect(url)
    except UnavailableError as exc:
        # The queue absorbs while PostgreSQL is away: start anyway, the writers retry.
        logger.warning("ingest: %s; accepting logs into the queue until it is back", exc)
        return
    with conn:
        migrate.require_current(conn, "logs")  # type: ignore[arg-type]


class IngestDaemon(GrpcDaemon):
    """Serves ``ledger.v1.IngestService``; ``port`` is the bound port after ``start()``."""

    name = "ingest"
    stop_grace_seconds = STOP_GRACE_SECONDS

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.role = settings.ingest_role
        self.writers: list[Writer] = []
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: Streams | None = None
        self.figures = IngestMetrics(self.metrics)

    async def start(self) -> None:
        """Open Redis and the logs pool, bind and start the server, start the writers.

        Raises:
            ConfigError: no internal token, no logs database or Redis URL, or the port is taken.
            MigrationError: the logs database lacks migrations.
            UnavailableError: Redis cannot be reached (PostgreSQL may be down: the queue
                absorbs and the writers wait for it).
        """
        settings = self.settings
        serves_api = self.role in ("api", "all")
        writers = settings.ingest_writers if self.role in ("writer", "all") else 0
        if self.role == "writer" and not writers:
            raise ConfigError("LEDGER_INGEST_WRITERS is 0 for an ingest process with the writer"
                              " role: give it at least one writer, or run another role")
        server = create_server(self.name, settings.internal_token, self._health,
                               observe=self.observe_rpcs,
                               also_accepted=settings.tokens_also_accepted())
        settings.require("logs_database_url", "redis_url")
        assert settings.logs_database_url and settings.redis_url
        url = settings.logs_database_url
        await asyncio.to_thread(_check_schema, url)
        try:
            # Never re-sent after a lost reply: the enqueue and ack scripts count (quota,
            # depth, notifications); a lost reply is a 503 and the client's retry repeats it.
            self._redis = await connect_redis(settings.redis_url, resend=False)
            # Each writer holds one connection per batch; the rest is for health checks. No
            # check per checkout (a round trip per batch): writers retry a failed batch, and
            # drop the pool's dead connections when one fails (``Writer.handle``).
            self._pool = async_pool(url, name="ingest-logs", min_size=1,
                                    max_size=max(2, writers + 2), check=False,
                                    idle_seconds=settings.db_pool_idle_seconds)
            await self._pool.open(wait=False)
            self._streams = Streams(self._redis)
            self.figures.watch_queue(self._redis)
            # Only writers in this process can be woken by its own enqueues; writer processes
            # find new projects by polling the project set (within about a second).
            queue = Queue(self._redis, on_new_project=self._streams.project_queued
                          if writers else None)
            if serves_api:
                ingest_pb2_grpc.add_IngestServiceServicer_to_server(
                    IngestServicer(settings, queue, GroupingCache(
                        self._pool, ttl=settings.ingest_grouping_cache_seconds),
                        self.figures, stopping=self._stopping, observe=self.observe_rpcs), server)
            self.port = bind(server, settings.ingest_listen, self.name)
            await server.start()
        except BaseException:
            await self._close_clients()
            raise
        self._server = server
        self._start_writers(queue, writers)
        host = settings.ingest_listen.rsplit(":", 1)[0]
        logger.info("ingest (%s role): serving %s on %s:%d with %d writers", self.role,
                    "gRPC" if serves_api else "health checks", host, self.port,
                    len(self.writers))

    def _start_writers(self, queue: Queue, count: int) -> None:
        assert self._redis is not None and self._pool is not None and self._streams is not None
        streams = self._streams
        months: set[date] = set()
        # Stable per host and port: a restarted daemon takes back its own pending entries.
        prefix = f"{socket.gethostname()}:{self.port}"
        for index in range(count):
            writer = Writer(f"{prefix}:w{index}", self._redis, queue, self._pool, streams,
                            max_attempts=self.settings.ingest_max_attempts,
                            stopping=self._stopping, known_months=months,
                            on_batch=self.figures.batch)
            writer.claim_idle_ms = int(self.settings.ingest_claim_idle_seconds * 1000)
            self.writers.append(writer)
            self._tasks.append(asyncio.create_task(writer.run(), name=f"ingest-writer-{index}"))

    async def wait(self) -> None:
        """Return once ``stop()`` began; raise when a writer task died (never expected)."""
        # Not the server's wait_for_termination(): cancelling that (what ``run`` does to this
        # coroutine on SIGTERM) cancels the server's own shutdown future, and stop() fails.
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({stopping, *self._tasks},
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        for task in self._tasks:
            if task in done and not self._stopping.is_set():
                # A cancelled task has no exception to give (exception() would raise).
                exc = None if task.cancelled() else task.exception()
                raise RuntimeError(f"ingest: {task.get_name()} stopped unexpectedly") from exc

    async def stop(self) -> None:
        """Finish in-flight calls, let writers finish their batch, then close everything."""
        self._stopping.set()
        await self._stop_server()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=STOP_WRITERS_SECONDS)
            for task in late:
                task.cancel()  # its entries stay pending: delivered again later
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()
        await self._close_clients()
        self._stopped.set()

    async def _health(self) -> dict[str, str]:
        checks = await super()._health()
        if self.role != "api":
            alive = sum(1 for t in self._tasks if not t.done())
            checks["writers"] = ("ok" if alive == len(self._tasks)
                                 else f"{alive} of {len(self._tasks)} running")
        return checks
