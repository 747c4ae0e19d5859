"""Helpers for the ingest tests: an in-process daemon, requests, polling the logs database."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import redis
from psycopg.rows import dict_row

from ledger.config import Settings
from ledger.daemons.ingest import IngestDaemon, create
from ledger.proto import ingest_pb2
from ledger.queue import names
from ledger.rpc.ingest_client import IngestClient
from tests.waiting import wait_until

SINGLE = ingest_pb2.INGEST_SHAPE_SINGLE
BATCH = ingest_pb2.INGEST_SHAPE_BATCH


@contextlib.asynccontextmanager
async def running_ingest(settings: Settings, **overrides: Any,
                         ) -> AsyncIterator[tuple[IngestDaemon, IngestClient]]:
    """An ingest daemon on port 0 (with ``overrides`` of its settings) and a client to it."""
    daemon = create(settings.with_overrides(**overrides))
    await daemon.start()
    client = IngestClient(f"127.0.0.1:{daemon.port}", str(settings.internal_token))
    try:
        yield daemon, client
    finally:
        await client.close()
        await daemon.stop()


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def log(i: int = 0, **fields: Any) -> dict[str, Any]:
    """An ordinary info log; ``fields`` override or add."""
    return {"timestamp": now_iso(), "level": "info", "message": f"message {i}", **fields}


def error_log(i: int = 0, **fields: Any) -> dict[str, Any]:
    """An exception log whose fingerprint is the same for every ``i``."""
    return log(i, **({"level": "error", "log_type": "exception", "error_type": "KeyError",
                      "error_message": f"missing key user_{i}"} | fields))


async def send(client: IngestClient, project_id: str, body: Any, *, shape: int = BATCH,
               retention_days: int = 90, daily_quota: int = 0) -> ingest_pb2.IngestLogsResponse:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.call(client.stub.IngestLogs, ingest_pb2.IngestLogsRequest(
        project_id=project_id, shape=shape, body=raw, retention_days=retention_days,
        daily_quota=daily_quota))


def new_project() -> str:
    return str(uuid.uuid4())


def count_logs(url: str, project_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM logs WHERE project_id = %s",
                           (project_id,)).fetchone()
    return int(row[0]) if row else 0


def fetch_logs(url: str, project_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM logs WHERE project_id = %s ORDER BY id",
                            (project_id,)).fetchall()


def queue_depth(redis_url: str, project_id: str) -> int:
    """The project's queue depth counter (sync, for ``eventually``)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.get(names.queue_depth(project_id)) or 0)  # type: ignore[arg-type]
    finally:
        client.close()


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0,
                     interval: float = 0.05) -> Any:
    """``wait_until`` for a blocking ``check``: run in a thread, so the loop keeps serving."""
    return await wait_until(lambda: asyncio.to_thread(check), "the checked condition held",
                            timeout=timeout, interval=interval)


async def stored(url: str, project_id: str, count: int, *, timeout: float = 10.0) -> None:
    """Wait until ``count`` logs of the project are in the database (and not more)."""
    await eventually(lambda: count_logs(url, project_id) >= count, timeout=timeout)
    assert count_logs(url, project_id) == count
