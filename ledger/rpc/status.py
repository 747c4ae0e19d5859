"""LedgerError <-> gRPC status, the one place where the two meet.

A server-side ``LedgerError`` becomes a gRPC status whose code fits the error and whose trailing
metadata carries the stable error code (and Retry-After), so the client side can raise the same
class again. Anything else becomes INTERNAL with no exception text.
"""

from __future__ import annotations

from typing import Any

import grpc

from ledger.errors import (
    BY_CODE,
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    LedgerError,
    NotFoundError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitedError,
    UnavailableError,
)

CODE_KEY = "ledger-error-code"
RETRY_KEY = "ledger-retry-after"
SERVICE_KEY = "ledger-unavailable-service"

_GRPC_CODES: dict[type[LedgerError], grpc.StatusCode] = {
    InvalidInputError: grpc.StatusCode.INVALID_ARGUMENT,
    AuthenticationError: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    ConflictError: grpc.StatusCode.ALREADY_EXISTS,
    RateLimitedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    QueueFullError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
}


# Status -> the most general class that maps to it (QueueFullError shares RESOURCE_EXHAUSTED).
_FROM_GRPC: dict[grpc.StatusCode, type[LedgerError]] = {
    status: cls for cls, status in reversed(list(_GRPC_CODES.items()))
}


def grpc_code(error: LedgerError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _GRPC_CODES:
            return _GRPC_CODES[cls]
    return grpc.StatusCode.INTERNAL


def trailing_metadata(error: LedgerError) -> tuple[tuple[str, str], ...]:
    meta = [(CODE_KEY, error.code)]
    if error.retry_after is not None:
        meta.append((RETRY_KEY, str(error.retry_after)))
    if isinstance(error, UnavailableError) and error.service:
        meta.append((SERVICE_KEY, error.service))
    return tuple(meta)


def from_rpc_error(exc: grpc.aio.AioRpcError, target: str) -> LedgerError:
    """Rebuild the server's ``LedgerError`` from a failed call (client side)."""
    meta: dict[str, str] = {}
    items: Any = exc.trailing_metadata() or ()
    for key, value in items:
        if isinstance(value, str):
            meta[str(key)] = value
    code = meta.get(CODE_KEY)
    retry = meta.get(RETRY_KEY)
    retry_after = int(retry) if retry and retry.isdigit() else None
    if code == UnavailableError.code:
        # What the daemon could not reach (Redis, PostgreSQL), else the daemon itself.
        return UnavailableError(exc.details() or None, retry_after=retry_after,
                                service=meta.get(SERVICE_KEY) or f"the {target} daemon")
    if code in BY_CODE:
        return BY_CODE[code](exc.details() or None, retry_after=retry_after)
    if code is not None and exc.code() in _FROM_GRPC:
        # A LedgerError subclass this side does not know (e.g. events.InvalidLog): rebuild
        # the nearest class by status so the edge still answers 4xx, not 500.
        return _FROM_GRPC[exc.code()](exc.details() or None, retry_after=retry_after)
    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return UnavailableError(f"the {target} daemon is unavailable ({exc.code().name.lower()})",
                                service=f"the {target} daemon")
    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # No Ledger code: gRPC itself refused the call (the daemon's concurrent-call cap).
        return UnavailableError(f"the {target} daemon is at its limit of concurrent calls",
                                retry_after=1, service=f"the {target} daemon")
    if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
        return UnavailableError(
            f"the {target} daemon refused the internal token: LEDGER_INTERNAL_TOKEN must be the"
            " same for every daemon"
        )
    return LedgerError(f"the {target} daemon failed ({exc.code().name.lower()})")
