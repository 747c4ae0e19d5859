"""Request bodies: gzip decompressed incrementally and capped after decompression."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable

import pytest
from starlette.requests import Request
from starlette.types import Message

from ledger.daemons.gateway.routes.bodies import check_json_content_type, read_body
from ledger.daemons.gateway.routes.responses import UnsupportedMediaTypeError
from ledger.errors import InvalidInputError, PayloadTooLargeError

CAP = 64 * 1024


def request(chunks: Iterable[bytes], headers: dict[str, str] | None = None) -> Request:
    """A real Starlette request whose body arrives in ``chunks``."""
    parts = list(chunks)
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(parts) - 1}
        for i, chunk in enumerate(parts)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0)

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw_headers},
                   receive)


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


async def test_plain_body_is_returned_as_sent() -> None:
    body = b'{"logs": []}' * 100
    assert await read_body(request(split(body, 7)), CAP) == body


async def test_gzip_body_is_decompressed_across_chunks() -> None:
    body = b'{"message": "hello"}' * 1000
    packed = gzip.compress(body)
    got = await read_body(request(split(packed, 100), {"Content-Encoding": "gzip"}), CAP)
    assert got == body


async def test_concatenated_gzip_members_are_one_body() -> None:
    packed = gzip.compress(b'{"a": ') + gzip.compress(b"1}")
    assert await read_body(request([packed], {"Content-Encoding": "gzip"}), CAP) == b'{"a": 1}'


async def test_gzip_bomb_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)  # ~50 KB on the wire
    assert len(bomb) < CAP
    with pytest.raises(PayloadTooLargeError, match="after decompression"):
        await read_body(request(split(bomb, 8192), {"Content-Encoding": "gzip"}), CAP)


async def test_exactly_the_cap_passes_one_more_byte_does_not() -> None:
    assert len(await read_body(request([b"x" * CAP]), CAP)) == CAP
    with pytest.raises(PayloadTooLargeError):
        await read_body(request(split(b"x" * (CAP + 1), 1000)), CAP)
    packed = gzip.compress(b"x" * (CAP + 1))
    with pytest.raises(PayloadTooLargeError):
        await read_body(request([packed], {"Content-Encoding": "gzip"}), CAP)


async def test_declared_length_over_the_cap_is_refused_before_reading() -> None:
    with pytest.raises(PayloadTooLargeError):
        await read_body(request([b"{}"], {"Content-Length": str(CAP + 1)}), CAP)


async def test_corrupt_and_truncated_gzip_are_400() -> None:
    with pytest.raises(InvalidInputError, match="not valid gzip"):
        await read_body(request([b"definitely not gzip"], {"Content-Encoding": "gzip"}), CAP)
    packed = gzip.compress(b'{"message": "x"}' * 100)
    with pytest.raises(InvalidInputError, match="truncated"):
        await read_body(request([packed[: len(packed) // 2]], {"Content-Encoding": "gzip"}), CAP)
    deflated = zlib.compress(b"{}")  # zlib framing, not gzip
    with pytest.raises(InvalidInputError, match="not valid gzip"):
        await read_body(request([deflated], {"Content-Encoding": "gzip"}), CAP)


async def test_empty_body_is_400() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        await read_body(request([]), CAP)
    with pytest.raises(InvalidInputError, match="empty"):
        await read_body(request([gzip.compress(b"")], {"Content-Encoding": "gzip"}), CAP)


async def test_unknown_content_encoding_is_415() -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="br"):
        await read_body(request([b"{}"], {"Content-Encoding": "br"}), CAP)


@pytest.mark.parametrize("content_type", [None, "application/json",
                                          "application/json; charset=utf-8",
                                          "application/vnd.ledger+json"])
def test_json_content_types_pass(content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    check_json_content_type(request([], headers))


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_other_content_types_are_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        check_json_content_type(request([], {"Content-Type": content_type}))
    assert caught.value.http_status == 415


async def test_client_gone_mid_body_is_an_ordinary_400() -> None:
    messages: list[Message] = [{"type": "http.request", "body": b'{"lo', "more_body": True},
                               {"type": "http.disconnect"}]

    async def receive() -> Message:
        return messages.pop(0)

    gone = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)
    with pytest.raises(InvalidInputError, match="disconnected"):
        await read_body(gone, CAP)
