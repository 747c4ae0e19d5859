"""Server interceptors: the internal token on every call (unary and streaming alike), and
LedgerError -> status."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from ledger.errors import LedgerError
from ledger.rpc.status import grpc_code, trailing_metadata

logger = logging.getLogger(__name__)

TOKEN_KEY = "x-ledger-internal-token"  # noqa: S105 (a header name, not a secret)
#: The standard gRPC health check answers without the token: Kubernetes probes cannot send
#: metadata, and its answer (SERVING) tells nothing that a TCP connect would not.
OPEN_METHOD_PREFIX = "/grpc.health.v1.Health/"

#: Told of every finished call: ``(rpc, status code name, seconds)`` (the daemon's metrics).
CallObserver = Callable[[str, str, float], None]


def rpc_name(method: str) -> str:
    """``/ledger.v1.IngestService/IngestLogs`` -> ``IngestService/IngestLogs``."""
    service, _, name = method.rpartition("/")
    return f"{service.rsplit('.', 1)[-1]}/{name}"


def _code_of(exc: BaseException, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    if isinstance(exc, LedgerError):
        return grpc_code(exc).name
    if isinstance(exc, grpc.aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    return grpc.StatusCode.INTERNAL.name


class _Timed:
    """Measures one call and tells the observer how it ended (once)."""

    __slots__ = ("code", "method", "observe", "started")

    def __init__(self, observe: CallObserver | None, method: str) -> None:
        self.observe = observe
        self.method = method
        self.code = "OK"
        self.started = time.perf_counter()

    def failed(self, exc: BaseException, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.code = _code_of(exc, context)

    def done(self) -> None:
        if self.observe is not None:
            self.observe(rpc_name(self.method), self.code, time.perf_counter() - self.started)


def token_accepted(sent: object, tokens: tuple[str, ...]) -> bool:
    """Whether ``sent`` is one of ``tokens`` (each compared in constant time, all of them
    always, so the time taken does not tell which one came close)."""
    if not isinstance(sent, str) or not sent:
        return False
    found = False
    for token in tokens:
        found |= hmac.compare_digest(sent.encode(), token.encode())
    return found


def _token_ok(context: grpc.aio.ServicerContext[Any, Any], tokens: tuple[str, ...]) -> bool:
    return token_accepted(dict(context.invocation_metadata() or ()).get(TOKEN_KEY, ""), tokens)


async def _abort_for(exc: BaseException, context: grpc.aio.ServicerContext[Any, Any],
                     method: str) -> None:
    """Abort the call with the status ``exc`` maps to (re-raising an abort as it is)."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    if isinstance(exc, LedgerError):
        context.set_trailing_metadata(trailing_metadata(exc))
        await context.abort(grpc_code(exc), exc.message)
    # Loop boundary of one RPC: log it here, tell the caller nothing of the internals.
    logger.error("%s failed", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def _wrap_unary_response(inner: Callable[..., Awaitable[Any]], tokens: tuple[str, ...],
                         method: str, observe: CallObserver | None,
                         ) -> Callable[..., Awaitable[Any]]:
    """unary-unary and stream-unary: one answer, awaited."""

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        timed = _Timed(observe, method)
        try:
            if not _token_ok(context, tokens):
                timed.code = grpc.StatusCode.UNAUTHENTICATED.name
                await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                    "missing or wrong internal token")
            try:
                return await inner(request, context)
            except Exception as exc:
                timed.failed(exc, context)
                await _abort_for(exc, context, method)
        finally:
            timed.done()

    return call


def _wrap_stream_response(inner: Callable[..., Any], tokens: tuple[str, ...],
                          method: str, observe: CallObserver | None,
                          ) -> Callable[..., AsyncIterator[Any]]:
    """unary-stream and stream-stream: the token is checked before the first message."""

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any],
                   ) -> AsyncIterator[Any]:
        timed = _Timed(observe, method)
        try:
            if not _token_ok(context, tokens):
                timed.code = grpc.StatusCode.UNAUTHENTICATED.name
                await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                    "missing or wrong internal token")
            try:
                answer = inner(request, context)
                if hasattr(answer, "__aiter__"):
                    async for message in answer:
                        yield message
                else:  # a coroutine that writes with context.write()
                    await answer
            except Exception as exc:
                timed.failed(exc, context)
                await _abort_for(exc, context, method)
        finally:
            timed.done()

    return call


def _wrap(handler: grpc.RpcMethodHandler[Any, Any], tokens: tuple[str, ...], method: str,
          observe: CallObserver | None) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` behind the token check and the error translation, whatever its kind."""
    codecs: dict[str, Any] = {"request_deserializer": handler.request_deserializer,
                              "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary_response(handler.unary_unary, tokens, method, observe), **codecs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_unary_response(handler.stream_unary, tokens, method, observe), **codecs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_stream_response(handler.unary_stream, tokens, method, observe), **codecs)
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(
        _wrap_stream_response(handler.stream_stream, tokens, method, observe), **codecs)


class InternalTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Rejects any call without ``LEDGER_INTERNAL_TOKEN`` and translates ``LedgerError``;
    tells ``observe`` (when given) how each call ended and how long it took."""

    def __init__(self, token: str, observe: CallObserver | None = None, *,
                 also_accepted: Sequence[str] = ()) -> None:
        # also_accepted: the other token while a new one is rolled out (accept both, then
        # send the new one, then drop the old one), so no daemon refuses another mid-way.
        self._tokens = (token, *(t for t in also_accepted if t))
        self._observe = observe

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_METHOD_PREFIX):
            return handler
        return _wrap(handler, self._tokens, handler_call_details.method, self._observe)
