"""Request bodies: raw bytes, gzip decompressed incrementally, capped AFTER decompression.

The gateway never parses logs (DESIGN §2.7: the rules live once, in ingest); it only makes sure
that what it forwards is a JSON body of a bounded size. A gzip bomb is stopped as soon as its
output passes the cap, without ever holding more than the cap in memory.
"""

from __future__ import annotations

import zlib

import brotli
from starlette.requests import ClientDisconnect, Request

from ledger.daemons.gateway.routes.responses import UnsupportedMediaTypeError
from ledger.errors import InvalidInputError, PayloadTooLargeError

_GZIP_WBITS = 16 + zlib.MAX_WBITS  # expect a gzip header and trailer
_DEFLATE_WBITS = 32 + zlib.MAX_WBITS  # a zlib or gzip header, detected


def _header(request: Request, name: bytes) -> str | None:
    """``request.headers.get(name)`` (the first one; ``name`` in lower case, as ASGI gives
    names), without building ``Headers`` or raising and catching a KeyError for an absent
    header, which Content-Encoding mostly is (issue 17: the single-log hot path)."""
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def check_json_content_type(request: Request) -> None:
    """Refuse bodies that say they are not JSON (a missing Content-Type is taken as JSON).

    Raises:
        UnsupportedMediaTypeError: the Content-Type is something else (415).
    """
    content_type = _header(request, b"content-type")
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


async def read_body(request: Request, max_bytes: int, *, any_encoding: bool = False) -> bytes:
    """The request body, gunzipped when ``Content-Encoding: gzip``, at most ``max_bytes``.

    Args:
        any_encoding: also accept ``deflate`` and ``br`` (what Sentry SDKs may send).

    Raises:
        PayloadTooLargeError: over ``max_bytes`` (after decompression) (413).
        InvalidInputError: corrupt or truncated gzip, or an empty body (400).
        UnsupportedMediaTypeError: a Content-Encoding other than gzip or identity (415).
    """
    encoding = (_header(request, b"content-encoding") or "").strip().lower()
    decoder: _Gunzip | _Unbrotli | None
    if encoding in ("gzip", "x-gzip"):
        decoder = _Gunzip(max_bytes)
    elif encoding == "deflate" and any_encoding:
        decoder = _Gunzip(max_bytes, _DEFLATE_WBITS, "deflate")
    elif encoding == "br" and any_encoding:
        decoder = _Unbrotli(max_bytes)
    elif encoding in ("", "identity"):
        decoder = None
    else:
        accepted = "gzip, deflate or br" if any_encoding else "gzip"
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding!r} is not supported: send the body as is or {accepted}"
        )
    declared = _header(request, b"content-length") or ""
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
    """Incremental gzip (or deflate) decoder, several members allowed, never past the cap."""

    def __init__(self, max_bytes: int, wbits: int = _GZIP_WBITS, name: str = "gzip") -> None:
        self._max = max_bytes
        self._out = 0
        self._wbits = wbits
        self._name = name
        self._inner = zlib.decompressobj(wbits)
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
                    f"the body is not valid {self._name} although Content-Encoding says so"
                ) from exc
            self._out += len(out)
            if self._out > self._max:
                raise _too_large(self._max)
            parts.append(out)
            if self._inner.unconsumed_tail:
                data = self._inner.unconsumed_tail
            elif self._inner.eof and self._inner.unused_data:
                data = self._inner.unused_data  # a further gzip member
                self._inner = zlib.decompressobj(self._wbits)
            else:
                data = b""
        return b"".join(parts)

    def finish(self) -> None:
        if self._seen_input and not self._inner.eof:
            raise InvalidInputError(f"the {self._name} body is truncated: send the whole"
                                    " compressed body")


class _Unbrotli:
    """Incremental brotli decoder that never outputs past the cap."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._out = 0
        self._inner = brotli.Decompressor()

    def feed(self, data: bytes) -> bytes:
        parts: list[bytes] = []
        try:
            while True:
                out = self._inner.process(data, output_buffer_limit=self._max - self._out + 1)
                data = b""
                self._out += len(out)
                if self._out > self._max:
                    raise _too_large(self._max)
                parts.append(out)
                if self._inner.is_finished() or self._inner.can_accept_more_data():
                    break
        except brotli.error as exc:
            raise InvalidInputError("the body is not valid br although Content-Encoding says"
                                    " so") from exc
        return b"".join(parts)

    def finish(self) -> None:
        if not self._inner.is_finished():
            raise InvalidInputError("the br body is truncated: send the whole compressed body")
