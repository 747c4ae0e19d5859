"""Issue 9 item 6: connections that send nothing, a head byte by byte, or a huge header are cut,
and connections past the concurrency bound are answered 503 at once.

They used to stay open for minutes (300 held at once) and a 100 MiB header was read whole. Here
the real gateway daemon (uvicorn in process) runs with a 0.5 s head deadline, a 4 KiB head cap
and, for the last test, room for three connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ledger.config import Settings
from ledger.daemons.gateway.daemon import GatewayDaemon
from tests.ports import free_port
from tests.waiting import wait_until


@contextlib.asynccontextmanager
async def _gateway(settings: Settings, **bounds: Any) -> AsyncIterator[int]:
    base = settings.with_overrides(**{f"{d}_addr": f"127.0.0.1:{free_port()}"
                                      for d in ("auth", "ingest", "query")})
    daemon = GatewayDaemon(base, **bounds)
    await daemon.start()
    try:
        yield daemon.port
    finally:
        await daemon.stop()


@pytest.fixture
async def port(settings: Settings) -> AsyncIterator[int]:
    async with _gateway(settings, head_timeout_seconds=0.5, max_head_bytes=4096) as port:
        yield port


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing (waits at most 10 s, far beyond the deadline)."""
    return await asyncio.wait_for(reader.read(), 10)


async def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_by_server(reader) == b""
    writer.close()


async def test_a_head_sent_byte_by_byte_is_cut_off(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    for byte in head:
        writer.write(bytes([byte]))
        try:
            await writer.drain()
        except ConnectionError:
            break  # cut off: what we want
        if reader.at_eof():
            break
        await asyncio.sleep(0.05)
    assert await _closed_by_server(reader) == b""
    writer.close()


async def test_a_head_over_the_cap_is_431_and_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    answer = await _closed_by_server(reader)
    assert answer.startswith(b"HTTP/1.1 431 ")
    writer.close()


async def test_an_ordinary_request_and_keep_alive_still_work(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.startswith(b"HTTP/1.1 200 ")
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        await asyncio.sleep(0.7)  # longer than the head deadline: idle is keep-alive's business
    writer.close()


async def _get_health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One keep-alive ``GET /health``: its status line (the body is read, the socket kept)."""
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    length = 0
    while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def test_a_connection_past_the_concurrency_bound_is_answered_503(
        settings: Settings) -> None:
    async with _gateway(settings, max_concurrency=3) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for reader, writer in held:
            assert (await _get_health(reader, writer)).startswith(b"HTTP/1.1 200 ")
        # Two idle keep-alive connections and this one make three: the bound is reached.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await _get_health(reader, writer)).startswith(b"HTTP/1.1 503 ")
        writer.close()
        await writer.wait_closed()
        # Once a held connection goes, a newcomer is served again.
        held[0][1].close()
        await held[0][1].wait_closed()

        async def served() -> bool:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return (await _get_health(reader, writer)).startswith(b"HTTP/1.1 200 ")
            finally:
                writer.close()
                await writer.wait_closed()

        await wait_until(served, "a freed connection slot serves a newcomer")
        held[1][1].close()
        await held[1][1].wait_closed()
