"""Test side of the live contract: write to Redis exactly as ingest does (DESIGN §7).

For each error ingest XADDs ``{"data": <json>}`` to the capped notifications stream and
PUBLISHes ``{"event_id", "data"}`` in one atomic step; for the tail it XADDs each log while the
watchers key exists and pokes the channel. These helpers do the same in one Lua call each.
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

from ledger import bus

_NOTIFY = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[1])
redis.call('PUBLISH', ARGV[3], '{"event_id":"' .. id .. '","data":' .. ARGV[1] .. '}')
return id
"""

_TAIL = """
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[1])
redis.call('PUBLISH', ARGV[3], id)
return id
"""

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


async def emit_error(redis: aioredis.Redis, project_id: str, maxlen: int = 1000,
                     **fields: Any) -> tuple[str, dict[str, Any]]:
    """One error notification, as ingest emits it; returns (stream id, data)."""
    data = make_log(project_id, **fields)
    event_id = await redis.eval(  # type: ignore[misc]
        _NOTIFY, 1, bus.notifications_stream(project_id), orjson.dumps(data), maxlen,
        bus.notifications_channel(project_id))
    return event_id.decode() if isinstance(event_id, bytes) else str(event_id), data


async def emit_log(redis: aioredis.Redis, project_id: str, maxlen: int = 2000,
                   **fields: Any) -> str | None:
    """One log on the tail, as ingest feeds it: only while a gateway watches the project."""
    data = make_log(project_id, **fields)
    event_id = await redis.eval(  # type: ignore[misc]
        _TAIL, 2, bus.tail_stream(project_id), bus.tail_watchers(project_id),
        orjson.dumps(data), maxlen, bus.tail_channel(project_id))
    if event_id is None:
        return None
    return event_id.decode() if isinstance(event_id, bytes) else str(event_id)


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
