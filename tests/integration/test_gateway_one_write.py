"""A whole answer leaves the gateway's HTTP protocol in one socket write (``edge/one_write.py``).

A real uvicorn server on a socket, once with the gateway's protocol and once with uvicorn's own,
serves the same small app; a client reads the raw bytes. The gateway's must be the same bytes
(the Date header aside), written once for an answer with a Content-Length; a chunked stream's
head must still reach the client before its first chunk, and a HEAD answer, a 204, an app that
fails after starting its answer and a pipelined request must come out as they did.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ledger.daemons.gateway.live.wire import LiveHttpProtocol


async def whole(request: Request) -> Response:
    return Response(b'{"accepted":1}', status_code=202, media_type="application/json",
                    headers={"X-RateLimit-Remaining-Minute": "41"})


async def empty(request: Request) -> Response:
    return Response(status_code=204)


async def stream(request: Request) -> StreamingResponse:
    released: asyncio.Event = request.app.state.released

    async def chunks() -> AsyncIterator[bytes]:
        await released.wait()  # set by the test once it has the head
        yield b"data: one\n\n"
    return StreamingResponse(chunks(), media_type="text/event-stream")


class Broken:
    """An ASGI endpoint that fails once its head is sent."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        raise RuntimeError("failed after starting its answer")


APP = Starlette(routes=[
    Route("/whole", whole, methods=["GET", "HEAD", "POST"]),
    Route("/empty", empty),
    Route("/stream", stream),
    Route("/broken", Broken()),
])


class _Counting:
    """The connection's transport, counting the writes that reach the socket."""

    def __init__(self, transport: Any, writes: list[int]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(1)
        self._transport.write(data)

    def writelines(self, parts: Any) -> None:
        self._writes.append(1)
        self._transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _counting(protocol: type[HttpToolsProtocol], writes: list[int]) -> type[HttpToolsProtocol]:
    class Counted(protocol):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(_Counting(transport, writes))
    return Counted


@contextlib.asynccontextmanager
async def _server(protocol: type[HttpToolsProtocol]) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(APP, http=protocol, lifespan="off", log_config=None,
                            access_log=False, server_header=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await serving


async def _exchange(port: int, request: bytes, *, until_close: bool = False) -> bytes:
    """What the server answers to ``request``: read until the answer is complete, or closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = b""
    try:
        while not until_close and not _complete(data, request):
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            if not chunk:
                break
            data += chunk
        if until_close:
            data = await asyncio.wait_for(reader.read(), 10)
    finally:
        await _close(writer)
    return data


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def _complete(data: bytes, request: bytes) -> bool:
    answers = request.count(b"\r\n\r\n")
    heads = data.count(b"HTTP/1.1 ")
    if heads < answers or not data.endswith((b"\r\n\r\n", b"}", b"0\r\n\r\n")):
        return False
    last = data.rsplit(b"HTTP/1.1 ", 1)[1]
    head, _, body = last.partition(b"\r\n\r\n")
    match = re.search(rb"content-length: (\d+)", head)
    length = int(match.group(1)) if match else 0
    return request.startswith(b"HEAD") or len(body) >= length


def _undated(data: bytes) -> bytes:
    return re.sub(rb"date: [^\r]*\r\n", b"", data)


REQUESTS = [
    b"GET /whole HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /whole HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    b"HEAD /whole HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /empty HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /whole HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /whole HTTP/1.1\r\nHost: x\r\n\r\nGET /empty HTTP/1.1\r\nHost: x\r\n\r\n",  # pipelined
]


@pytest.mark.parametrize("request_bytes", REQUESTS)
async def test_the_answer_is_the_same_bytes_as_uvicorns(request_bytes: bytes) -> None:
    answers = []
    for protocol in (LiveHttpProtocol, HttpToolsProtocol):
        async with _server(protocol) as port:
            answers.append(_undated(await _exchange(port, request_bytes)))
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.1 ")


async def test_an_answer_with_a_content_length_is_one_write() -> None:
    for protocol, expected in ((LiveHttpProtocol, 1), (HttpToolsProtocol, 2)):
        writes: list[int] = []
        async with _server(_counting(protocol, writes)) as port:
            answer = await _exchange(port, REQUESTS[1])
        assert answer.startswith(b"HTTP/1.1 202 ")
        assert answer.endswith(b'{"accepted":1}')
        assert len(writes) == expected, protocol


async def test_a_streams_head_reaches_the_client_before_its_first_chunk() -> None:
    APP.state.released = released = asyncio.Event()
    async with _server(LiveHttpProtocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"transfer-encoding: chunked" in head
        released.set()
        chunk = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 10)
        assert b"data: one" in chunk
        await _close(writer)


async def test_an_app_failing_after_its_head_sends_the_head_then_closes() -> None:
    answers = []
    for protocol in (LiveHttpProtocol, HttpToolsProtocol):
        async with _server(protocol) as port:
            answers.append(_undated(await _exchange(
                port, b"GET /broken HTTP/1.1\r\nHost: x\r\n\r\n", until_close=True)))
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.1 200 ")


async def _cyclic_garbage_of(protocol: type[HttpToolsProtocol], requests: int) -> int:
    """Objects the cyclic collector frees after ``requests`` answers on one connection."""
    async with _server(protocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await _keep_alive_post(reader, writer)  # the connection's own objects, made once
        gc.collect()
        gc.disable()
        try:
            for _ in range(requests):
                await _keep_alive_post(reader, writer)
            return gc.collect()
        finally:
            gc.enable()
            await _close(writer)


async def _keep_alive_post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # POST: the ingest routes' method (a GET carries the live streams' BodyChunks as well).
    writer.write(REQUESTS[1])
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)


async def test_a_request_leaves_no_cyclic_garbage_behind() -> None:
    # A cycle that referred to itself (a send closure set on it, say) kept every request's
    # scope and state for the cyclic collector: ~20 objects per request.
    ours = await _cyclic_garbage_of(LiveHttpProtocol, 100)
    uvicorns = await _cyclic_garbage_of(HttpToolsProtocol, 100)
    assert ours <= uvicorns + 20, (ours, uvicorns)
