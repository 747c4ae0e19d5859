"""Request bodies: raw bytes, gzip decompressed incrementally, capped AFTER decompression.

The gateway never parses logs (DESIGN §2.7: the rules live once, in ingest); it only makes sure
that what it forwards is a JSON body of a bounded size. A gzip bomb is stopped as soon as its
output passes the cap, without ever holding more than the cap in memory.
"""

from __future__ import annotations

import zlib

from starlette.requests import ClientDisconnect, Request

from ledger.daemons.gateway.routes.responses import UnsupportedMediaTypeError
from ledger.errors import InvalidInputError, PayloadTooLargeError

_GZIP_WBITS = 16 + zlib.MAX_WBITS  # expect a gzip header and trailer


def check_json_content_type(request: Request) -> None:
    """Refuse bodies that say they are not JSON (a missing Content-Type is taken as JSON).

    Raises:
        UnsupportedMediaTypeError: the Content-Type is something else (415).
    """
    content_type = request.headers.get("content-type")
    if not content_type:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise UnsupportedMediaTypeError(
        f"Content-Type {media!r} is not supported: send JSON with"
        " 'Content-Type: application/json'"
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, gunzipped when ``Content-Encoding: gzip``, at most ``max_bytes``.

    Raises:
        PayloadTooLargeError: over ``max_bytes`` (after decompression) (413).
        InvalidInputError: corrupt or truncated gzip, or an empty body (400).
        UnsupportedMediaTypeError: a Content-Encoding other than gzip or identity (415).
    """
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        decoder: _Gunzip | None = _Gunzip(max_bytes)
    elif encoding in ("", "identity"):
        decoder = None
    else:
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r} is not supported: send the body as is or gzip it"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)

    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            received += len(chunk)
            if received > max_bytes:  # compressed input over the cap is over it unpacked too
                raise _too_large(max_bytes)
            chunks.append(decoder.feed(chunk) if decoder is not None else chunk)
    except ClientDisconnect:
        # Nobody is left to read the answer; an ordinary 400 keeps it out of the error log.
        raise InvalidInputError("the client disconnected before sending the whole body"
                                ) from None
    if decoder is not None:
        decoder.finish()
    body = b"".join(chunks)
    if not body:
        raise InvalidInputError("the request body is empty: send a JSON document")
    return body


def _too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body is over {max_bytes} bytes (after decompression):"
        " send fewer logs per request"
    )


class _Gunzip:
    """Incremental gzip decoder (several members allowed) that never outputs past the cap."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._out = 0
        self._inner = zlib.decompressobj(_GZIP_WBITS)
        self._seen_input = False

    def feed(self, data: bytes) -> bytes:
        self._seen_input = True
        parts: list[bytes] = []
        while data:
            try:
                # Ask for one byte more than allowed: getting it proves the body is too big.
                out = self._inner.decompress(data, self._max - self._out + 1)
            except zlib.error as exc:
                raise InvalidInputError(
                    "the body is not valid gzip although Content-Encoding says gzip"
                ) from exc
            self._out += len(out)
            if self._out > self._max:
                raise _too_large(self._max)
            parts.append(out)
            if self._inner.unconsumed_tail:
                data = self._inner.unconsumed_tail
            elif self._inner.eof and self._inner.unused_data:
                data = self._inner.unused_data  # a further gzip member
                self._inner = zlib.decompressobj(_GZIP_WBITS)
            else:
                data = b""
        return b"".join(parts)

    def finish(self) -> None:
        if self._seen_input and not self._inner.eof:
            raise InvalidInputError("the gzip body is truncated: send the whole compressed body")
