"""Queue entries: one request's logs encoded for the stream, and read back by the writers.

Fields of an entry: ``n`` (logs in it), ``rows`` (their binary COPY tuples, back to back, see
``rows.py``), ``ends`` (where each tuple ends: little-endian uint32s), ``months`` (the months
their timestamps fall in, for partitions), ``hours`` (the UTC hours they fall in, as hours since
the epoch: analytics recomputes those rollups), ``errors`` (a few fields of each error event, for
the error groups) and ``fp`` (fingerprint → components). The writer's normal path sends
``rows`` to PostgreSQL as they are; ``ends`` lets it split a batch to isolate a bad log.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from ledger.core.error_groups import title
from ledger.core.events import TypedRequest
from ledger.queue import rows as rows_codec

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_EXACT_HOURS = 2_000_000  # hours after 2000-01-01: the year 2228

#: The names of an entry's fields, in the order ``EntryBuilder.values`` gives their values.
FIELDS: tuple[str, ...] = ("n", "rows", "ends", "months", "hours", "errors", "fp")

NOTIFICATION_FIELDS: tuple[str, ...] = (
    "id", "project_id", "timestamp", "level", "log_type", "message", "error_type",
    "error_message", "error_fingerprint", "stack_trace", "attributes", "environment", "release",
)

@dataclass
class EntryBuilder:
    """Collects the enriched records of one request into the fields of one queue entry."""

    project_id: str
    rows: list[bytes] = field(default_factory=list)
    errors: list[list[Any]] = field(default_factory=list)
    components: dict[str, Any] = field(default_factory=dict)
    months: set[tuple[int, int]] = field(default_factory=set)
    hours: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._project = rows_codec.project_bytes(self.project_id)
        # The records of one request share their ingested_at: its field is encoded once.
        self._ingested: tuple[datetime, bytes] | None = None

    def add(self, record: Mapping[str, Any]) -> None:
        """Encode one record (from ``events.enrich``)."""
        index = len(self.rows)
        ingested_at = record["ingested_at"]
        if self._ingested is None or self._ingested[0] is not ingested_at:
            self._ingested = (ingested_at, rows_codec.timestamp_field(ingested_at))
        self.rows.append(rows_codec.encode_row(record, self._project, self._ingested[1]))
        self._note(index, record)

    def extend(self, typed: TypedRequest) -> None:
        """``add`` each log of one common-case request (``events.typed_records``), encoded by
        ``rows.encode_rows`` from its tuples and the JSON of its attributes: same fields, less
        CPU. Only its error events become dicts (for ``errors``)."""
        if not typed.values:
            return
        start = len(self.rows)
        hours: set[int] = set()
        self.rows += rows_codec.encode_rows(
            typed.values, typed.attributes_json, self._project,
            rows_codec.timestamp_field(typed.ingested_at), hours)
        # The months and hours from the request's few distinct hours, not from each log: the
        # same as _note's int(timestamp()) // 3600 from 1970 (before, int() rounds toward zero)
        # until a double's 1 µs precision runs out in 2242 (validation allows now + 5 min).
        if min(hours) >= -rows_codec.HOURS_TO_PG_EPOCH and max(hours) < _EXACT_HOURS:
            self.hours.update(h + rows_codec.HOURS_TO_PG_EPOCH for h in hours)
            for hour in hours:
                at = _PG_EPOCH + timedelta(hours=hour)
                self.months.add((at.year, at.month))
            for index in typed.errors:
                self._note_error(start + index, typed.record(index))
        else:
            for index in range(len(typed.values)):
                self._note(start + index, typed.record(index))

    def _note(self, index: int, record: Mapping[str, Any]) -> None:
        timestamp = record["timestamp"]
        self.months.add((timestamp.year, timestamp.month))
        self.hours.add(int(timestamp.timestamp()) // 3600)
        if record["error_fingerprint"] is not None:
            self._note_error(index, record)

    def _note_error(self, index: int, record: Mapping[str, Any]) -> None:
        timestamp, fingerprint = record["timestamp"], record["error_fingerprint"]
        self.errors.append([
            index, record["id"], timestamp.isoformat(), record["level"],
            record["log_type"], title(record), record["error_type"], record["release"],
            fingerprint, record["fingerprint_version"], record["ingested_at"].isoformat()])
        self.components[fingerprint] = record.get("fingerprint_components") or {}

    def fields(self) -> dict[str, bytes]:
        """The stream entry's fields."""
        return dict(zip(FIELDS, self.values(), strict=True))

    def values(self) -> tuple[bytes, ...]:
        """The values of the stream entry's fields, in the order of ``FIELDS``."""
        ends, at = [], 0
        for row in self.rows:
            at += len(row)
            ends.append(at)
        return (
            str(len(self.rows)).encode(),
            b"".join(self.rows),
            struct.pack(f"<{len(ends)}I", *ends),
            ",".join(f"{y:04d}-{m:02d}" for y, m in sorted(self.months)).encode(),
            ",".join(map(str, sorted(self.hours))).encode(),
            orjson.dumps(self.errors),
            orjson.dumps(self.components),
        )


@dataclass
class Entry:
    """One queue entry as a writer got it."""

    project_id: str
    entry_id: str
    n: int
    blob: bytes = b""
    ends: list[int] = field(default_factory=list)
    months: set[date] = field(default_factory=set)
    #: UTC hours (since the epoch) its logs fall in; empty for entries queued before the field.
    hours: set[int] = field(default_factory=set)
    #: ``[index, id, timestamp, level, log_type, title, error_type, release, fingerprint,
    #: version, ingested_at]`` per error event (entries queued before ingested_at was added
    #: have ten fields).
    errors: list[list[Any]] = field(default_factory=list)
    components: dict[str, Any] = field(default_factory=dict)
    #: Why the entry cannot be decoded (it then goes to the dead letters whole).
    broken: str | None = None
    #: Times Redis delivered it (1 when read new; more after reclaims and restarts).
    deliveries: int = 1

    def row(self, index: int) -> bytes:
        """The binary COPY tuple of one log."""
        return self.blob[self.ends[index - 1] if index else 0: self.ends[index]]

    def rows(self, start: int, stop: int) -> bytes:
        """The tuples of logs ``start`` to ``stop - 1``, back to back."""
        return self.blob[self.ends[start - 1] if start else 0: self.ends[stop - 1]]


def as_text(value: bytes | str) -> str:
    """Redis answers bytes (or str): text either way."""
    return value.decode() if isinstance(value, bytes) else value


def decode_entry(project_id: str, entry_id: bytes | str, fields: Mapping[Any, Any]) -> Entry:
    """An ``Entry`` from XREADGROUP/XCLAIM output; never raises (a bad one is ``broken``)."""
    entry = Entry(project_id, as_text(entry_id), 0)
    if b"rows" not in fields:
        # Field names as text (a client that decodes answers), or a field missing: read by
        # bytes keys all the same. The writer's normal path (bytes) skips this copy.
        fields = {k.encode() if isinstance(k, str) else k: v for k, v in fields.items()}
    get: Callable[[bytes], Any] = fields.get
    try:
        entry.n = int(get(b"n"))
        entry.blob = bytes(get(b"rows"))
        raw_ends = bytes(get(b"ends"))
        entry.ends = list(struct.unpack(f"<{len(raw_ends) // 4}I", raw_ends))
        months = get(b"months")
        if months:
            entry.months = _months(as_text(months))
        hours = get(b"hours")
        if hours:
            entry.hours = {int(h) for h in as_text(hours).split(",") if h}
        errors = get(b"errors")
        # ``[]`` and ``{}`` (an entry without error events) are most entries: no parse.
        entry.errors = orjson.loads(errors) if errors and errors != b"[]" else []
        components = get(b"fp")
        entry.components = (orjson.loads(components) if components and components != b"{}"
                            else {})
    except (TypeError, ValueError, struct.error) as exc:  # JSONDecodeError is a ValueError
        entry.broken = f"unreadable queue entry ({type(exc).__name__}: {exc})"
        return entry
    if (len(entry.ends) != entry.n or (entry.ends and entry.ends[-1] != len(entry.blob))
            or type(entry.errors) is not list or type(entry.components) is not dict):
        entry.broken = "unreadable queue entry (its fields do not agree)"
    return entry


@functools.lru_cache(maxsize=256)
def _parsed_months(months: str) -> frozenset[date]:
    return frozenset(date(int(m[:4]), int(m[5:7]), 1) for m in months.split(",") if m)


def _months(months: str) -> set[date]:
    """The months an entry's ``months`` field names (parsed once per distinct value: a few
    months cover nearly every entry)."""
    return set(_parsed_months(months))


def notification(record: Mapping[str, Any]) -> bytes:
    """The JSON that live clients get for one log (error notifications and the tail)."""
    return orjson.dumps({k: record.get(k) for k in NOTIFICATION_FIELDS})
