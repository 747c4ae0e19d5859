"""Test side of the live contract: logs reach Redis through ingest's own enqueue (DESIGN §7).

``emit_error`` and ``emit_log`` run the real producer, ``ledger.queue.client.Queue.enqueue``
(the same Lua script, the same notification and tail JSON ingest sends), so the hub tests test
what ingest writes, not a copy of it.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import redis.asyncio as aioredis

from ledger.core.events import LOG_COLUMNS
from ledger.queue import names
from ledger.queue.client import Queue
from ledger.queue.entries import EntryBuilder, notification

_seq = itertools.count(1)


def make_log(project_id: str, level: str = "error", message: str | None = None,
             **extra: Any) -> dict[str, Any]:
    """A log shaped like what ingest puts on the streams."""
    n = next(_seq)
    data: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "project_id": project_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "level": level,
        "log_type": "exception" if level in ("error", "critical") else "logger",
        "message": message or f"boom {n}",
        "error_type": "ValueError" if level in ("error", "critical") else None,
        "error_message": f"bad value {n}",
        "error_fingerprint": f"fp{n % 3}",
        "stack_trace": 'Traceback (most recent call last):\n  File "app.py", line 3, in main\n'
                       "ValueError: bad value",
        "attributes": {"n": n},
        "environment": "production",
        "release": "1.0.0",
    }
    data.update(extra)
    return data


_MAX_DEPTH = 1_000_000_000


def _entry(project_id: str, data: dict[str, Any]) -> tuple[EntryBuilder, bytes]:
    """The queue entry and the live JSON (notification and tail) of one log like ``data``."""
    record: dict[str, Any] = {column: None for column in LOG_COLUMNS}
    record.update(data, timestamp=datetime.fromisoformat(data["timestamp"]),
                  ingested_at=datetime.now(UTC), importance="normal", fingerprint_version=1,
                  fingerprint_components={})
    if record["level"] not in ("error", "critical"):
        record["error_fingerprint"] = None  # only errors are notified and grouped
    entry = EntryBuilder(project_id)
    entry.add(record)
    return entry, notification(record)


async def _newest(redis: aioredis.Redis, stream: str) -> str:
    newest: Any = await redis.xrevrange(stream, count=1)
    [(stream_id, _)] = newest
    return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)


async def emit_error(redis: aioredis.Redis, project_id: str, **fields: Any,
                     ) -> tuple[str, dict[str, Any]]:
    """One error, queued as ingest queues it; returns (notification stream id, data)."""
    data = make_log(project_id, **fields)
    entry, live = _entry(project_id, data)
    await Queue(redis).enqueue(project_id, entry, max_depth=_MAX_DEPTH, notifications=[live])
    return await _newest(redis, names.notifications_stream(project_id)), orjson.loads(live)


async def emit_log(redis: aioredis.Redis, project_id: str, **fields: Any) -> str | None:
    """One log queued with its tail JSON, as ingest does once a project is watched: it reaches
    the tail only while a gateway watches; returns its tail stream id, else None."""
    data = make_log(project_id, **fields)
    entry, live = _entry(project_id, data)
    notifications = [live] if data["level"] in ("error", "critical") else []
    _, watched = await Queue(redis).enqueue(project_id, entry, max_depth=_MAX_DEPTH,
                                            notifications=notifications, tail=[live])
    return await _newest(redis, names.tail_stream(project_id)) if watched else None


class Blip:
    """A TCP proxy in front of the gateway whose connections can be cut: a network blip.

    ``cut()`` closes every open connection and refuses new ones until ``restore()``.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.refusing = False
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except asyncio.CancelledError:
            # Python 3.11 logs a cancelled connection handler as an error: end quietly.
            writer.transport.abort()
            up_writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()

    def cut(self) -> None:
        self.refusing = True
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    def restore(self) -> None:
        self.refusing = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def provision(auth_db_url: str, slug: str) -> tuple[str, str]:
    """An account, a project ``slug`` and a key of it (ingest + read): (project id, key)."""
    from ledger.core import accounts, api_keys, projects

    conn = await psycopg.AsyncConnection.connect(auth_db_url, autocommit=True)
    try:
        account = await accounts.register(conn, f"{slug}@example.com", "correct horse battery")
        project = await projects.create_project(conn, account_id=account.id, name=slug,
                                                slug=slug)
        _, key = await api_keys.create_key(conn, project.id, "tail")
    finally:
        await conn.close()
    return project.id, key


def error_body(message: str, **fields: Any) -> dict[str, Any]:
    """An exception log as an application sends it to ``POST /api/v1/ingest/single``."""
    return {"timestamp": datetime.now(UTC).isoformat(), "level": "error",
            "log_type": "exception", "error_type": "ValueError", "error_message": message,
            "message": message,
            "stack_trace": 'Traceback (most recent call last):\n  File "shop/cart.py", line 8,'
                           f" in checkout\n    total = price(cart)\nValueError: {message}",
            **fields}
