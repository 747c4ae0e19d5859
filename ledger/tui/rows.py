"""What ``ledger tail`` shows, independent of Textual: rows, counts per fingerprint, rates.

Every event from the stream becomes a ``LogRow``; a ``skipped`` event becomes a gap row, so a
loss is as visible in the table as the logs around it.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ERROR_LEVELS = frozenset({"error", "critical"})


def parse_time(raw: Any) -> datetime | None:
    """An ISO-8601 time (``Z`` allowed; naive means UTC), or None when it is not one."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _first_line(text: Any, limit: int = 500) -> str:
    if not isinstance(text, str):
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


@dataclass(slots=True)
class LogRow:
    """One line of the table: a log, or (``gap`` set) the notice of skipped events."""

    key: str
    data: dict[str, Any] = field(default_factory=dict)
    count: int = 1  # occurrences of this fingerprint so far, this one included
    gap: str | None = None  # the skipped notice

    @property
    def level(self) -> str:
        return str(self.data.get("level") or "")

    @property
    def is_error(self) -> bool:
        return self.gap is None and (self.level in ERROR_LEVELS
                                     or self.data.get("log_type") == "exception")

    @property
    def time(self) -> datetime | None:
        return parse_time(self.data.get("timestamp"))

    @property
    def project_id(self) -> str:
        return str(self.data.get("project_id") or "")

    @property
    def kind(self) -> str:
        """The log type (exception, logger, network, …).

        Not the error type: the Message column already starts with it ("KeyError: 'sku'"),
        and on an 80-column terminal the same word twice on a row costs the message its room.
        """
        return str(self.data.get("log_type") or "")

    @property
    def message(self) -> str:
        """What the Message column shows: for an exception its type and error message.

        A logging-style exception's ``message`` is what the handler said ("Unhandled exception
        in request handler"), the same for every error; the error itself is what tells rows
        apart, so it comes first whenever there is one.
        """
        if self.gap is not None:
            return self.gap
        error_type = str(self.data.get("error_type") or "")
        error_message = _first_line(self.data.get("error_message"))
        if error_type or error_message:
            if error_type and error_message:
                return f"{error_type}: {error_message}"
            if error_message:
                return error_message
            return f"{error_type}: {_first_line(self.data.get('message')) or '(no message)'}"
        return _first_line(self.data.get("message")) or "(no message)"

    @property
    def fingerprint(self) -> str:
        return str(self.data.get("error_fingerprint") or "")

    def matches(self, needle: str) -> bool:
        """Case-insensitive search over what the row shows and its fingerprint."""
        if not needle:
            return True
        needle = needle.lower()
        fields = (self.message, self.kind, self.level, self.project_id, self.fingerprint,
                  str(self.data.get("error_message") or ""),
                  str(self.data.get("environment") or ""), str(self.data.get("release") or ""))
        return any(needle in f.lower() for f in fields)


class ErrorRate:
    """Errors per minute over the last ``minutes`` minutes (the sparkline)."""

    def __init__(self, minutes: int = 60) -> None:
        self.minutes = minutes
        self._counts: Counter[int] = Counter()

    def add(self, at: float | None = None, now: float | None = None) -> None:
        """Count one error in the minute it happened (``at``; default: now).

        Replayed events (``--since``) land in their own minutes; a time in the future (a
        client's clock ahead of ours) counts as now, and one older than the window is dropped.
        """
        current = time.time() if now is None else now
        minute = int(min(current if at is None else at, current) // 60)
        oldest_kept = int(current // 60) - self.minutes
        if minute <= oldest_kept:
            return
        self._counts[minute] += 1
        for old in [m for m in self._counts if m <= oldest_kept]:
            del self._counts[old]

    def series(self, now: float | None = None) -> list[int]:
        """Counts per minute, oldest first, the current minute last."""
        current = int((time.time() if now is None else now) // 60)
        return [self._counts.get(m, 0) for m in range(current - self.minutes + 1, current + 1)]


class RowBook:
    """The rows received (newest last, at most ``limit``) and the counts per fingerprint."""

    def __init__(self, limit: int = 5000) -> None:
        self.rows: deque[LogRow] = deque()
        self.limit = limit
        self.counts: Counter[str] = Counter()
        self.errors = 0
        self.rate = ErrorRate()

    def add_event(self, event_id: str | None, data: dict[str, Any]) -> tuple[LogRow, LogRow | None]:
        """Record one log; returns it and the row that fell off the end (if any)."""
        row = LogRow(key=event_id or str(data.get("id") or id(data)), data=data)
        if row.fingerprint:
            self.counts[row.fingerprint] += 1
            row.count = self.counts[row.fingerprint]
        if row.is_error:
            self.errors += 1
            when = row.time
            self.rate.add(when.timestamp() if when else None)
        return row, self._append(row)

    def add_gap(self, data: dict[str, Any]) -> tuple[LogRow, LogRow | None]:
        """Record a ``skipped`` notice as a row of its own."""
        count = data.get("count")
        what = "some events" if count is None else f"{count} event(s)"
        why = ("this terminal read too slowly" if data.get("reason") == "slow_client"
               else "older than what the server keeps")
        row = LogRow(key=f"gap-{len(self.rows)}-{time.monotonic_ns()}", data={},
                     gap=f"── {what} skipped: {why} ──")
        return row, self._append(row)

    def _append(self, row: LogRow) -> LogRow | None:
        self.rows.append(row)
        if len(self.rows) > self.limit:
            return self.rows.popleft()
        return None
