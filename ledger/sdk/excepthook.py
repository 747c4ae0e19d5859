"""Report uncaught exceptions: ``install_excepthook(client)``.

Replaces ``sys.excepthook`` (the main thread) and ``threading.excepthook`` (other threads)
with hooks that log the exception at ``critical``, flush for up to ``flush_timeout`` seconds
(the process is about to die) and then call the hook that was there before, so the traceback
is still printed. ``KeyboardInterrupt`` is passed through unlogged.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any

from ledger.sdk.client import Ledger

__all__ = ["install_excepthook"]


def install_excepthook(client: Ledger, *, flush_timeout: float = 2.0,
                       threads: bool = True) -> None:
    """Log uncaught exceptions on ``client`` before the previous hooks run."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException,
             tb: TracebackType | None) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            client.exception(exc, level="critical", uncaught=True)
            client.flush(flush_timeout)
        previous(kind, exc, tb)

    sys.excepthook = hook
    if not threads:
        return
    previous_thread = threading.excepthook

    def thread_hook(args: Any) -> None:
        if args.exc_value is not None and not issubclass(args.exc_type, SystemExit):
            thread = args.thread.name if args.thread is not None else None
            client.exception(args.exc_value, level="critical", uncaught=True, thread=thread)
            client.flush(flush_timeout)
        previous_thread(args)

    threading.excepthook = thread_hook
