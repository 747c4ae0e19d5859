"""The Ledger client an application imports: ``Ledger(api_key=..., url=...)``.

A log call builds one small dict and appends it to a bounded buffer, in the caller's thread; a
single background thread (the flusher) takes batches of up to 1 000 every second, or as soon
as a batch is full, and POSTs them gzip-compressed to ``/api/v1/ingest/batch``. The thread
works the same under sync and async applications, and the call never waits for the network.

Delivery:

- Each log gets a client-generated ``log_id`` (a UUIDv7) when its batch is formed, so a batch
  sent again after a timeout or a 429 is stored once (the gateway de-duplicates on it).
- 429 and 503 are retried after ``Retry-After``; network errors and other 5xx after an
  exponential backoff (0.5 s doubling up to ``max_backoff``). The batch keeps its place.
- 413 splits the batch in two; a 400 (no log of the batch valid) drops it, counted in
  ``rejected``. 401/403 stop the client with one warning: a bad key does not get better.
- The buffer holds at most ``max_buffer`` logs; past that new logs are dropped and counted in
  ``dropped`` (memory stays bounded while the server is away).
- ``flush()`` waits until everything logged so far is delivered (or given up);
  ``close()`` flushes and stops the thread, and runs by itself at interpreter exit. A child
  made by ``fork()`` starts with an empty buffer (its parent still sends what it had) and its
  own flusher thread.

No method raises into the application: a failure inside the SDK is logged on the
``ledger.sdk`` logger (which ``LedgerHandler`` never forwards) and otherwise ignored.
"""

from __future__ import annotations

import atexit
import logging
import os
import platform
import random
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from ledger import __version__
from ledger.sdk import transport

__all__ = ["DEFAULT_URL", "Ledger"]

logger = logging.getLogger("ledger.sdk")

DEFAULT_URL = "http://127.0.0.1:8000"
MAX_BATCH = 1000
FIRST_BACKOFF_SECONDS = 0.5
#: How long ``close()`` waits at interpreter exit for the last batches.
EXIT_TIMEOUT_SECONDS = 5.0
_LEVELS = ("debug", "info", "warning", "error", "critical")
#: The server's limits (DESIGN §3): longer texts are cut here rather than refused there.
MAX_MESSAGE, MAX_ERROR_TYPE, MAX_ERROR_MESSAGE, MAX_STACK_TRACE = 10_000, 255, 5_000, 50_000

_F = TypeVar("_F", bound=Callable[..., Any])
_clients: weakref.WeakSet[Ledger] = weakref.WeakSet()


def _never_raises(method: _F) -> _F:
    """The application must never see an exception from the SDK."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception:
            logger.exception("ledger: %s failed (ignored)", method.__name__)
            return None

    guarded.__name__ = method.__name__
    guarded.__doc__ = method.__doc__
    return guarded  # type: ignore[return-value]


def _uuid7() -> str:
    """A UUIDv7 (time-ordered, so the stored ids stay close together in the index)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 68) << 64 \
        | 0b10 << 62 | rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _configured(api_key: str | None, url: str | None) -> tuple[str | None, str]:
    """The key and URL given, else ``LEDGER_API_KEY`` / ``LEDGER_URL``, else the default URL."""
    if api_key and url:
        return api_key, url
    from ledger.config import Settings
    from ledger.errors import LedgerError

    try:
        settings = Settings.from_env()
    except LedgerError as exc:  # another LEDGER_* variable is malformed: not our business
        logger.warning("ledger: cannot read LEDGER_URL/LEDGER_API_KEY: %s", exc)
        return api_key, url or DEFAULT_URL
    return (api_key or (str(settings.api_key) if settings.api_key else None),
            url or settings.url or DEFAULT_URL)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_head(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1:]


def format_exception(exc: BaseException) -> str:
    """The traceback as Python prints it, chained causes and contexts included."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class Ledger:
    """Send logs, exceptions and endpoint timings to a Ledger gateway.

    Args:
        api_key: a project key (``ledger_…``, an ``ingest`` key is enough); default
            ``LEDGER_API_KEY``.
        url: the gateway, e.g. ``http://127.0.0.1:8000``; default ``LEDGER_URL``.
        environment: stored on every log (``production``, ``staging``…).
        release: your application's version, stored on every log.
        batch_size: logs per request, at most 1 000.
        flush_interval: seconds between sends of a batch that is not full.
        max_buffer: logs held in memory at most; past that new ones are dropped and counted.
        timeout: seconds for one HTTP request.
        max_backoff: longest wait between retries, in seconds.
        default_attributes: merged into every log's attributes.
    """

    def __init__(self, api_key: str | None = None, url: str | None = None, *,
                 environment: str | None = None, release: str | None = None,
                 batch_size: int = MAX_BATCH, flush_interval: float = 1.0,
                 max_buffer: int = 10_000, timeout: float = 10.0, max_backoff: float = 30.0,
                 default_attributes: dict[str, Any] | None = None) -> None:
        key, base = _configured(api_key, url)
        self.api_key = key
        self.url = base.rstrip("/")
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.flush_interval = flush_interval
        self.max_buffer = max(1, max_buffer)
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.default_attributes = dict(default_attributes or {})
        self._common: dict[str, Any] = {
            "sdk_version": __version__[:20], "platform": "python",
            "platform_version": platform.python_version()}
        if environment:
            self._common["environment"] = environment
        if release:
            self._common["release"] = release
        #: Logs dropped because the buffer was full, the client closed or stopped, or a batch
        #: was given up at close.
        self.dropped = 0
        #: Logs the server refused as invalid.
        self.rejected = 0
        #: Logs the server accepted.
        self.sent = 0
        self._stopped_reason: str | None = None if key else "no API key"
        if key is None:
            logger.warning("ledger: no API key (pass api_key= or set LEDGER_API_KEY):"
                           " logs will be dropped")
        self._reset()
        self._closed = False
        _clients.add(self)
        atexit.register(self._at_exit)

    def _reset(self) -> None:
        """State of the flusher; also what a forked child starts from."""
        self._pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self._buffer: deque[dict[str, Any]] = deque()
        self._queued = 0  # logs appended so far
        self._done = 0  # logs whose fate is known (sent, rejected or dropped after queueing)
        self._flush_to = 0  # send partial batches until ``_done`` reaches this
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------
    # Logging API (application threads)
    # ----------------------------------------------------------------------------------------

    @_never_raises
    def log(self, level: str, message: str, **attributes: Any) -> None:
        """A log of ``level`` (debug, info, warning, error, critical) with ``attributes``."""
        self._enqueue({"level": level if level in _LEVELS else "info",
                       "message": _cut(str(message), MAX_MESSAGE),
                       **self._attributes(attributes)})

    def debug(self, message: str, **attributes: Any) -> None:
        """A debug log."""
        self.log("debug", message, **attributes)

    def info(self, message: str, **attributes: Any) -> None:
        """An info log."""
        self.log("info", message, **attributes)

    def warning(self, message: str, **attributes: Any) -> None:
        """A warning log."""
        self.log("warning", message, **attributes)

    def error(self, message: str, **attributes: Any) -> None:
        """An error log (grouped and notified like an exception)."""
        self.log("error", message, **attributes)

    def critical(self, message: str, **attributes: Any) -> None:
        """A critical log."""
        self.log("critical", message, **attributes)

    @_never_raises
    def exception(self, exc: BaseException | None = None, message: str | None = None, *,
                  level: str = "error", **attributes: Any) -> None:
        """An exception log: type, message and the formatted traceback (chained causes too).

        Args:
            exc: the exception; default the one being handled (``sys.exc_info()``).
            message: the log message; default ``"<type>: <message>"``.
            level: ``error`` unless said otherwise.
        """
        if exc is None:
            exc = sys.exc_info()[1]
            if exc is None:
                return  # nothing is being handled: nothing to report
        record = self.exception_record(exc, message, level)
        record.update(self._attributes(attributes))
        self._enqueue(record)

    @staticmethod
    def exception_record(exc: BaseException, message: str | None = None,
                         level: str = "error") -> dict[str, Any]:
        """The fields of an exception log for ``exc`` (used by the integrations too)."""
        error_type = type(exc).__qualname__
        try:
            error_message = str(exc)
        except Exception:  # a broken __str__ must not lose the exception
            error_message = f"<unprintable {error_type}>"
        return {
            "level": level if level in _LEVELS else "error",
            "log_type": "exception",
            "message": _cut(message or (f"{error_type}: {error_message}" if error_message
                                        else error_type), MAX_MESSAGE),
            "error_type": error_type[:MAX_ERROR_TYPE],
            "error_message": _cut(error_message, MAX_ERROR_MESSAGE),
            # The end of a long trace is the innermost frame and the final exception: keep it.
            "stack_trace": _cut_head(format_exception(exc), MAX_STACK_TRACE),
        }

    @_never_raises
    def endpoint(self, method: str, path: str, status_code: int, duration_ms: float,
                 **attributes: Any) -> None:
        """An endpoint log: one request, with its route template, status and duration.

        ``path`` should be the route template (``/orders/{id}``), so that metrics group by
        route; 5xx answers are logged at ``warning`` (the exception, if any, is its own log).
        """
        endpoint = {"method": method, "path": path, "status_code": int(status_code),
                    "duration_ms": float(duration_ms)}
        record = self._attributes(attributes)
        record.setdefault("attributes", {})["endpoint"] = endpoint
        self._enqueue({"level": "warning" if status_code >= 500 else "info",
                       "log_type": "endpoint", "message": f"{method} {path} {status_code}",
                       **record})

    @_never_raises
    def record(self, record: dict[str, Any]) -> None:
        """Queue a log already in Ledger's record shape (DESIGN §3), e.g. from an integration.

        ``timestamp`` defaults to now; ``default_attributes`` are merged in.
        """
        if self.default_attributes:
            record["attributes"] = {**self.default_attributes, **record.get("attributes", {})}
        self._enqueue(record)

    def _attributes(self, attributes: dict[str, Any]) -> dict[str, Any]:
        if self.default_attributes:
            attributes = {**self.default_attributes, **attributes}
        return {"attributes": attributes} if attributes else {}

    def _enqueue(self, record: dict[str, Any]) -> None:
        record.setdefault("timestamp", time.time())
        with self._cond:
            if self._closed or self._stopped_reason is not None or \
                    len(self._buffer) >= self.max_buffer:
                self.dropped += 1
                return
            self._buffer.append(record)
            self._queued += 1
            if self._thread is None:
                self._start()
            elif len(self._buffer) == self.batch_size:
                self._cond.notify_all()

    # ----------------------------------------------------------------------------------------
    # flush, close, exit, fork
    # ----------------------------------------------------------------------------------------

    @_never_raises
    def flush(self, timeout: float | None = 10.0) -> bool:
        """Send everything logged so far; True when it was all delivered (or given up)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._queued
            self._flush_to = max(self._flush_to, target)
            self._cond.notify_all()
            while self._done < target:
                if self._thread is None or not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    @_never_raises
    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, then stop the flusher; later log calls are dropped. True when all was sent.

        What could not be delivered within ``timeout`` is counted in ``dropped``.
        """
        with self._cond:
            if self._closed:
                return self._done >= self._queued
            self._closed = True
        delivered = bool(self.flush(timeout))
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(0.1 if delivered else 1.0)
        with self._cond:
            left = self._queued - self._done
            if left > 0:
                self.dropped += left
                self._done = self._queued
                self._buffer.clear()
        return delivered

    def _at_exit(self) -> None:
        if self._pid == os.getpid():
            self.close(EXIT_TIMEOUT_SECONDS)

    def _after_fork(self) -> None:
        """In a forked child: a fresh buffer and a flusher of its own (threads do not fork)."""
        self._reset()

    # ----------------------------------------------------------------------------------------
    # The flusher thread
    # ----------------------------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ledger-flusher", daemon=True)
        self._thread.start()

    def _take(self) -> list[dict[str, Any]]:
        size = min(self.batch_size, len(self._buffer))
        batch = [self._buffer.popleft() for _ in range(size)]
        common = self._common.items()
        for record in batch:  # in the flusher's thread: the application's stays cheap
            record["log_id"] = _uuid7()
            for key, value in common:
                record.setdefault(key, value)
        return batch

    def _run(self) -> None:
        pending: list[list[dict[str, Any]]] = []  # batches taken, not yet delivered
        while True:
            with self._cond:
                if not pending:
                    wanted = self._done < self._flush_to or self._stopping
                    if not wanted and len(self._buffer) < self.batch_size:
                        self._cond.wait(self.flush_interval)
                    if not self._buffer:
                        if self._stopping:
                            return
                        continue
                    pending.append(self._take())
            batch = pending.pop(0)
            try:
                pending[:0] = self._deliver(batch)
            except Exception:  # the thread must survive anything: count the batch as lost
                logger.exception("ledger: sending a batch failed; %d logs lost", len(batch))
                self._finish(len(batch), dropped=len(batch))

    def _finish(self, count: int, *, sent: int = 0, rejected: int = 0, dropped: int = 0,
                ) -> None:
        with self._cond:
            self.sent += sent
            self.rejected += rejected
            self.dropped += dropped
            self._done += count
            self._cond.notify_all()

    def _deliver(self, batch: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Send one batch until it is delivered or given up; return batches still to send
        (the halves of a batch that was too big)."""
        body = transport.encode_batch(batch)
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            if self._stopped_reason is not None:
                self._finish(len(batch), dropped=len(batch))
                return []
            outcome = transport.post_batch(self.url, str(self.api_key), body, self.timeout)
            status = outcome.status
            if 200 <= status < 300:
                self._finish(len(batch), sent=len(batch) - outcome.rejected,
                             rejected=outcome.rejected)
                return []
            if status in (401, 403):
                self._stop(f"the gateway refused the API key ({status}: {outcome.detail})")
                continue
            if status == 413 and len(batch) > 1:
                half = len(batch) // 2
                return [batch[:half], batch[half:]]
            if 400 <= status < 500 and status not in (408, 429):
                logger.warning("ledger: the gateway refused %d logs (%d: %s)", len(batch),
                               status, outcome.detail)
                self._finish(len(batch), rejected=len(batch))
                return []
            wait = outcome.retry_after if outcome.retry_after is not None \
                else backoff * (0.5 + random.random())  # noqa: S311 - jitter, not crypto
            backoff = min(backoff * 2, self.max_backoff)
            if not self._sleep(min(wait, max(self.max_backoff, outcome.retry_after or 0))):
                self._finish(len(batch), dropped=len(batch))
                return []

    def _sleep(self, seconds: float) -> bool:
        """Wait before a retry; False when the client is stopping and the wait is pointless
        (``close()`` has already given up)."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                self._cond.wait(remaining)
        return False

    def _stop(self, reason: str) -> None:
        with self._cond:
            if self._stopped_reason is None:
                self._stopped_reason = reason
                logger.warning("ledger: %s; no more logs will be sent by this client:"
                               " check api_key / LEDGER_API_KEY", reason)
            dropped = len(self._buffer)
            self._buffer.clear()
        self._finish(dropped, dropped=dropped)


def _after_fork_in_child() -> None:
    for client in list(_clients):
        client._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
