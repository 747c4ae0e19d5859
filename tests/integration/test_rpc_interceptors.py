"""The internal-token interceptor guards every kind of RPC, streaming ones included.

A real ``grpc.aio`` server on port 0 with the interceptor the daemons use, serving one method
of each kind (bytes in, bytes out), called over a real channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from ledger.errors import NotFoundError
from ledger.rpc.interceptors import TOKEN_KEY, InternalTokenInterceptor

TOKEN = "s3cret-internal"


#: Names of the handlers that ran: none may run without the token.
RAN: list[str] = []


async def _unary_unary(request: bytes, context: Any) -> bytes:
    RAN.append("UnaryUnary")
    return b"uu:" + request


async def _unary_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    RAN.append("UnaryStream")
    if request == b"missing":
        raise NotFoundError("no such thing")
    for part in (b"a", b"b"):
        yield part + request


async def _stream_unary(requests: AsyncIterator[bytes], context: Any) -> bytes:
    RAN.append("StreamUnary")
    return b"".join([r async for r in requests])


async def _stream_stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    RAN.append("StreamStream")
    async for request in requests:
        yield b"ss:" + request


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler("test.Kinds", {
        "UnaryUnary": grpc.unary_unary_rpc_method_handler(_unary_unary),
        "UnaryStream": grpc.unary_stream_rpc_method_handler(_unary_stream),
        "StreamUnary": grpc.stream_unary_rpc_method_handler(_stream_unary),
        "StreamStream": grpc.stream_stream_rpc_method_handler(_stream_stream),
    })


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[InternalTokenInterceptor(TOKEN)])
    server.add_generic_rpc_handlers((_handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
            yield chan
    finally:
        await server.stop(None)


async def _requests(parts: tuple[bytes, ...] = (b"x", b"y")) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _call_each_kind(chan: grpc.aio.Channel, metadata: list[tuple[str, str]],
                          ) -> dict[str, Any]:
    # Without the token the server ends the call at once; a client still writing its
    # request stream then may see its own write fail ("Internal error from Core") instead of
    # the server's status, so refused calls send an empty stream.
    parts = (b"x", b"y") if metadata and metadata[0][1] == TOKEN else ()
    answers: dict[str, Any] = {}
    calls = {
        "UnaryUnary": lambda: chan.unary_unary("/test.Kinds/UnaryUnary")(
            b"1", metadata=metadata),
        "StreamUnary": lambda: chan.stream_unary("/test.Kinds/StreamUnary")(
            _requests(parts), metadata=metadata),
    }
    for name, call in calls.items():
        try:
            answers[name] = await call()
        except grpc.aio.AioRpcError as exc:
            answers[name] = exc.code()
    streams = {
        "UnaryStream": lambda: chan.unary_stream("/test.Kinds/UnaryStream")(
            b"1", metadata=metadata),
        "StreamStream": lambda: chan.stream_stream("/test.Kinds/StreamStream")(
            _requests(parts), metadata=metadata),
    }
    for name, open_stream in streams.items():
        try:
            answers[name] = [message async for message in open_stream()]
        except grpc.aio.AioRpcError as exc:
            answers[name] = exc.code()
    return answers


async def test_every_kind_of_rpc_needs_the_internal_token(channel: grpc.aio.Channel) -> None:
    RAN.clear()
    for metadata in ([], [(TOKEN_KEY, "wrong")]):
        answers = await _call_each_kind(channel, metadata)
        assert answers == dict.fromkeys(answers, grpc.StatusCode.UNAUTHENTICATED), answers
    assert RAN == []  # no handler ran
    answers = await _call_each_kind(channel, [(TOKEN_KEY, TOKEN)])
    assert answers == {"UnaryUnary": b"uu:1", "StreamUnary": b"xy",
                       "UnaryStream": [b"a1", b"b1"], "StreamStream": [b"ss:x", b"ss:y"]}


async def test_a_streaming_handlers_ledger_error_keeps_its_status(
        channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        _ = [m async for m in channel.unary_stream("/test.Kinds/UnaryStream")(
            b"missing", metadata=[(TOKEN_KEY, TOKEN)])]
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "no such thing"
