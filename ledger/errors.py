"""Ledger's errors: one tree, each class with a stable ``code`` and its docstring as the message.

    LedgerError
    ├── ConfigError            a LEDGER_* variable is wrong or missing
    ├── UnavailableError       PostgreSQL, Redis or a daemon cannot be reached
    ├── MigrationError         a migration is missing, edited or failed
    ├── InvalidInputError      the caller sent something malformed (HTTP 400 / INVALID_ARGUMENT)
    │   └── PayloadTooLargeError   body over the cap after decompression (413)
    ├── AuthenticationError    no, unknown, malformed, expired or revoked credentials (401)
    ├── PermissionDeniedError  authenticated but not allowed (403)
    ├── NotFoundError          no such thing, or not yours to see (404)
    ├── ConflictError          already exists (409)
    ├── RateLimitedError       over a rate limit or the daily quota (429)
    └── QueueFullError         the project's queue is over LEDGER_QUEUE_MAX_DEPTH (503)

Edges translate them: HTTP handlers (``http_status``), ``ledger.rpc.status`` (gRPC codes) and
the CLI (one line on stderr and ``exit_code``). Nothing else catches them to rename them.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Something went wrong in Ledger."""

    code = "ledger_error"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str | None = None, *, retry_after: int | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.retry_after = retry_after
        super().__init__(self.message)


class ConfigError(LedgerError):
    """The configuration is invalid."""

    code = "config_error"
    exit_code = 78  # EX_CONFIG


class UnavailableError(LedgerError):
    """A service Ledger depends on is unavailable; try again shortly."""

    code = "unavailable"
    http_status = 503
    exit_code = 69  # EX_UNAVAILABLE

    def __init__(self, message: str | None = None, *, retry_after: int | None = None,
                 service: str | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        #: What is unavailable, safe to tell any caller ("Redis", "the query daemon"); the
        #: message itself may name hosts and stays in the log.
        self.service = service


class MigrationError(LedgerError):
    """The database schema is not in the state this version of Ledger expects."""

    code = "migration_error"
    exit_code = 65  # EX_DATAERR


class InvalidInputError(LedgerError):
    """The request is invalid."""

    code = "invalid_input"
    http_status = 400
    exit_code = 64  # EX_USAGE


class PayloadTooLargeError(InvalidInputError):
    """The request body is too large."""

    code = "payload_too_large"
    http_status = 413


class AuthenticationError(LedgerError):
    """Invalid or missing credentials."""

    code = "unauthenticated"
    http_status = 401
    exit_code = 77  # EX_NOPERM


class PermissionDeniedError(LedgerError):
    """You are not allowed to do this."""

    code = "permission_denied"
    http_status = 403
    exit_code = 77


class NotFoundError(LedgerError):
    """Not found."""

    code = "not_found"
    http_status = 404
    exit_code = 66  # EX_NOINPUT


class ConflictError(LedgerError):
    """It already exists."""

    code = "conflict"
    http_status = 409
    exit_code = 73  # EX_CANTCREAT


class RateLimitedError(LedgerError):
    """Rate limit exceeded; slow down."""

    code = "rate_limited"
    http_status = 429
    exit_code = 75  # EX_TEMPFAIL


class QueueFullError(LedgerError):
    """The project's ingest queue is full; retry later."""

    code = "queue_full"
    http_status = 503
    exit_code = 75


ALL_ERRORS: tuple[type[LedgerError], ...] = (
    LedgerError, ConfigError, UnavailableError, MigrationError, InvalidInputError,
    PayloadTooLargeError, AuthenticationError, PermissionDeniedError, NotFoundError,
    ConflictError, RateLimitedError, QueueFullError,
)

BY_CODE: dict[str, type[LedgerError]] = {cls.code: cls for cls in ALL_ERRORS}
