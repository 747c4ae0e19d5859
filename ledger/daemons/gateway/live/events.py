"""What flows through the live feeds: stream ids and cursors, feeds, events and filters.

Stream ids are Redis stream ids (``<milliseconds>-<sequence>``), compared as tuples. A cursor
is the SSE ``id:`` of a connection: the last id sent per project (see ``format_cursor``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger.errors import InvalidInputError
from ledger.queue import names
from ledger.queue.limits import NOTIFICATIONS_MAXLEN, TAIL_MAXLEN

StreamKey = tuple[int, int]
ZERO: StreamKey = (0, 0)


# -- stream ids and cursors ---------------------------------------------------------------------


def parse_stream_id(raw: str) -> StreamKey:
    """``"1700000000000-3"`` (or ``"1700000000000"``) as a comparable ``(ms, seq)`` tuple."""
    ms, _, seq = raw.strip().partition("-")
    try:
        key = (int(ms), int(seq or 0))
    except ValueError:
        raise InvalidInputError(
            f"bad event id {raw[:60]!r}: expected <milliseconds>-<sequence>, as sent in `id:`"
        ) from None
    if key[0] < 0 or key[1] < 0:
        raise InvalidInputError(f"bad event id {raw[:60]!r}: negative numbers")
    return key


def format_stream_id(key: StreamKey) -> str:
    return f"{key[0]}-{key[1]}"


def parse_cursor(raw: str | None, project_ids: Iterable[str]) -> dict[str, StreamKey]:
    """Positions to resume from, per project, from a ``Last-Event-ID`` header.

    A bare stream id (what a one-project connection sends, or a time in milliseconds) applies to
    every project; ``<project>:<id>,<project>:<id>`` is what a many-project connection sends.
    Projects the cursor does not name start at "now".
    """
    wanted = list(project_ids)
    if raw is None or not raw.strip():
        return {}
    if ":" not in raw:
        key = parse_stream_id(raw)
        return dict.fromkeys(wanted, key)
    positions: dict[str, StreamKey] = {}
    for part in raw.split(","):
        project_id, sep, stream_id = part.strip().partition(":")
        if not sep:
            raise InvalidInputError(f"bad Last-Event-ID part {part[:60]!r}: expected project:id")
        if project_id in wanted:
            positions[project_id] = parse_stream_id(stream_id)
    return positions


def format_cursor(positions: dict[str, StreamKey]) -> str:
    """The SSE ``id:`` of a connection: a bare stream id when it follows one project."""
    if len(positions) == 1:
        return format_stream_id(next(iter(positions.values())))
    return ",".join(f"{pid}:{format_stream_id(key)}" for pid, key in sorted(positions.items()))


# -- what flows ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Feed:
    """A family of per-project streams: notifications of errors, or the tail of all logs."""

    name: str
    event: str  # the SSE event name of its items
    stream: Callable[[str], str]
    channel: Callable[[str], str]
    cap: int  # ingest trims the stream to about this many entries (MAXLEN ~)
    poke_only: bool  # the channel only says "read the stream"


NOTIFICATIONS = Feed("notifications", "error_notification", names.notifications_stream,
                     names.notifications_channel, NOTIFICATIONS_MAXLEN, poke_only=False)
TAIL = Feed("tail", "log", names.tail_stream, names.tail_channel, TAIL_MAXLEN, poke_only=True)


@dataclass(slots=True, eq=False)
class Event:
    """One log from a stream: ``payload`` is its JSON, serialised once for every client.

    ``frame`` caches the SSE frame that every one-project client sends as is, and ``chunk``
    that frame as an HTTP chunk (``wire.chunk``), so that fanning an event out to a thousand
    clients encodes and frames it once.
    """

    project_id: str
    id: str
    key: StreamKey
    level: str
    log_type: str
    payload: bytes
    frame: bytes = b""
    chunk: bytes = b""

    @classmethod
    def from_data(cls, project_id: str, event_id: str, data: dict[str, Any],
                  payload: bytes | None = None) -> Event:
        return cls(project_id, event_id, parse_stream_id(event_id), str(data.get("level", "")),
                   str(data.get("log_type", "")), payload or orjson.dumps(data))


@dataclass(frozen=True, slots=True)
class Skipped:
    """Events of ``project_id`` this client will never get; ``count`` is None when unknown."""

    project_id: str
    count: int | None
    reason: str  # "slow_client" | "beyond_cap"

    def payload(self) -> bytes:
        return orjson.dumps({"project_id": self.project_id, "count": self.count,
                             "reason": self.reason, "message": self.describe()})

    def describe(self) -> str:
        many = "some events" if self.count is None else f"{self.count} event(s)"
        if self.reason == "slow_client":
            return f"{many} skipped: this client read too slowly and they left the buffer"
        return f"{many} lost: they are older than the newest the server keeps"


class Heartbeat:
    """Time for a heartbeat: the hub offers one to every client every 15 s."""


HEARTBEAT = Heartbeat()


@dataclass(slots=True)
class CatchUp:
    """Park for events a full queue refused: fill from the stream, up to ``upto`` per project.

    ``dropped`` is the number refused per project, or None for "unknown" (after a reconnection
    to Redis, where ``upto`` is None too: read to the end of the stream).
    """

    upto: dict[str, StreamKey | None] = field(default_factory=dict)
    dropped: dict[str, int | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a client wants; ``None`` means all."""

    levels: frozenset[str] | None = None
    log_types: frozenset[str] | None = None

    def matches(self, level: str, log_type: str) -> bool:
        return ((self.levels is None or level in self.levels)
                and (self.log_types is None or log_type in self.log_types))


Item = Event | Skipped | Heartbeat
