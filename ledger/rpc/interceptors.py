"""Server interceptors: the internal token on every call, and LedgerError -> status."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ledger.errors import LedgerError
from ledger.rpc.status import grpc_code, trailing_metadata

logger = logging.getLogger(__name__)

TOKEN_KEY = "x-ledger-internal-token"  # noqa: S105 (a header name, not a secret)


def _wrap_unary(
    handler: grpc.RpcMethodHandler[Any, Any], token: str, method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    inner = handler.unary_unary
    assert inner is not None

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        sent = dict(context.invocation_metadata() or ()).get(TOKEN_KEY, "")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), token.encode()):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong internal token")
        try:
            return await inner(request, context)  # type: ignore[arg-type]
        except LedgerError as exc:
            context.set_trailing_metadata(trailing_metadata(exc))
            await context.abort(grpc_code(exc), exc.message)
        except grpc.aio.AbortError:
            raise
        except Exception:
            # Loop boundary of one RPC: log it here, tell the caller nothing of the internals.
            logger.exception("%s failed", method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    return grpc.unary_unary_rpc_method_handler(
        call,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class InternalTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Rejects any call without ``LEDGER_INTERNAL_TOKEN`` and translates ``LedgerError``."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return _wrap_unary(handler, self._token, handler_call_details.method)
