"""``LedgerHandler``: the standard ``logging`` module, sent to Ledger.

    logging.getLogger().addHandler(LedgerHandler(Ledger()))

Levels map by threshold (a custom level 25 is ``info``), ``exc_info`` makes an exception log,
and ``extra={...}`` becomes attributes, beside the logger name and the source location.
"""

from __future__ import annotations

import logging
from typing import Any

from ledger.sdk.client import MAX_MESSAGE, Ledger

__all__ = ["LedgerHandler"]

#: What every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


def _level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


class LedgerHandler(logging.Handler):
    """A ``logging.Handler`` that queues each record on a ``Ledger`` client.

    Args:
        client: the client to send with; default a new ``Ledger()`` from the environment.
        level: the handler's threshold.
    """

    def __init__(self, client: Ledger | None = None, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.client = client if client is not None else Ledger()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "ledger.sdk" or record.name.startswith("ledger.sdk."):
            return  # the SDK's own warnings: sending them could loop
        try:
            self.client.record(self.to_record(record))
        except Exception:
            self.handleError(record)

    def to_record(self, record: logging.LogRecord) -> dict[str, Any]:
        """The Ledger log of a ``logging`` record."""
        attributes: dict[str, Any] = {
            "logger": record.name, "module": record.module, "function": record.funcName,
            "line": record.lineno, "thread": record.threadName, "process": record.process}
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                attributes[key] = value
        message = record.getMessage()[:MAX_MESSAGE]
        level = _level(record.levelno)
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            out = Ledger.exception_record(exc, message, level)
        else:
            out = {"level": level, "message": message}
            if record.stack_info:
                out["stack_trace"] = record.stack_info
        out["timestamp"] = record.created
        out["attributes"] = attributes
        return out
