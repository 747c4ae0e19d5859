"""Logs as PostgreSQL binary COPY tuples: made once at ingest, sent as they are by the writers.

Why not JSON in the queue and ``events.to_row`` in the writer: decoding JSON into Python objects
and dumping them again cost the writer 6-7 µs per log (measured), which capped the writers at a
third of raw COPY; encoding the tuple here costs ingest ~2.3 µs instead of ~1 µs for JSON, and
leaves the writer no per-log work on its normal path (DESIGN §9 asks ≥ 0.7 x raw COPY).

The tuple layout is that of ``COPY logs (LOG_COLUMNS) FROM STDIN (FORMAT BINARY)``: a 16-bit
field count, then per field a 32-bit length (-1 for NULL) and the value in PostgreSQL's binary
send format. ``decode_row`` reverses it, for dead letters and replays (never on the hot path).
"""

from __future__ import annotations

import functools
import operator
import struct
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ledger.core.events import IMPORTANCES, LEVELS, LOG_COLUMNS, LOG_TYPES, TYPED_FIELDS

#: Starts a binary COPY stream: signature, flags, header extension length.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
#: Ends it: a field count of -1.
COPY_TRAILER = b"\xff\xff"

_TEXT_OID = 25
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NULL = b"\xff\xff\xff\xff"
_FIELDS = struct.pack(">h", len(LOG_COLUMNS))
_UUID_LEN = struct.pack(">i", 16)
_INT2_LEN = struct.pack(">i", 2)
_len = struct.Struct(">i").pack
_timestamp = struct.Struct(">iq").pack  # length 8, then microseconds since 2000-01-01
_array_head = struct.Struct(">iiiii").pack  # ndim, has-null flag, element oid, size, lower bound
_TEXTS = ("level", "log_type", "importance", "message", "error_type", "error_message",
          "stack_trace", "environment", "release", "sdk_version", "platform", "platform_version")
assert ("project_id", "id", "timestamp", "ingested_at", *_TEXTS, "attributes",
                       "trace_id", "span_id", "client_fingerprint", "error_fingerprint",
                       "fingerprint_version") == LOG_COLUMNS, "rows.py must follow the logs table"


@functools.lru_cache(maxsize=4096)
def project_bytes(project_id: str) -> bytes:
    """The ``project_id`` field, encoded once per request (and cached: few projects send)."""
    return _UUID_LEN + uuid.UUID(project_id).bytes


def _micros(value: datetime) -> int:
    return (value - _PG_EPOCH) // _MICROSECOND


def timestamp_field(value: datetime) -> bytes:
    """A ``timestamptz`` field (its length, then the value): for a time shared by many rows."""
    return _timestamp(8, _micros(value))


def encode_row(record: Mapping[str, Any], project: bytes,
               ingested_at: bytes | None = None) -> bytes:
    """One enriched record (``events.enrich``) as a binary COPY tuple.

    Args:
        record: Every ``LOG_COLUMNS`` key; ``timestamp``/``ingested_at`` aware datetimes,
            ``id`` a canonical UUID string, ``attributes`` a dict or JSON text.
        project: ``project_bytes(record["project_id"])``.
        ingested_at: ``timestamp_field(record["ingested_at"])`` when the caller has it (every
            record of a request shares it), else computed here.
    """
    # Runs once per log on ingest's hot path (DESIGN §9): the text fields are fetched in one
    # C call and each field is one append of length + value, not two.
    out = [_FIELDS, project, _UUID_LEN, bytes.fromhex(record["id"].replace("-", "")),
           _timestamp(8, _micros(record["timestamp"])),
           ingested_at if ingested_at is not None else timestamp_field(record["ingested_at"])]
    add = out.append
    for value in _choices_of(record):
        field = _CHOICE_FIELDS.get(value)
        if field is None:  # not a value validation gives (e.g. a replayed dead letter)
            data = value.encode()
            field = _len(len(data)) + data
        add(field)
    for value in _texts_of(record):
        if value is None:
            add(_NULL)
        else:
            data = value.encode()
            add(_len(len(data)) + data)
    attributes = record["attributes"]
    data = (attributes.encode() if isinstance(attributes, str)
            else orjson.dumps(attributes if attributes is not None else {}))
    add(_len(len(data) + 1) + b"\x01" + data)  # \x01: jsonb binary format version
    trace_id, span_id, elements, fingerprint, version = _tail_of(record)
    for value in (trace_id, span_id):
        if value is None:
            add(_NULL)
        else:
            data = value.encode()
            add(_len(len(data)) + data)
    add(_text_array(elements))
    if fingerprint is None:
        add(_NULL)
    else:
        data = fingerprint.encode()
        add(_len(len(data)) + data)
    add(_NULL if version is None else _INT2_LEN + int(version).to_bytes(2, "big", signed=True))
    return b"".join(out)


#: level, log_type and importance take a few values: their fields are made once.
_choices_of = operator.itemgetter(*_TEXTS[:3])
_CHOICE_FIELDS = {value: _len(len(value)) + value.encode()
                  for value in (*LEVELS, *LOG_TYPES, *IMPORTANCES)}
_texts_of = operator.itemgetter(*_TEXTS[3:])
_tail_of = operator.itemgetter("trace_id", "span_id", "client_fingerprint", "error_fingerprint",
                               "fingerprint_version")


_NULL3 = _NULL * 3
_NULL5 = _NULL * 5
_jsonb_head = struct.Struct(">ib").pack  # length, then the jsonb binary format version (1)
#: A record's values in ``TYPED_FIELDS`` order, as ``encode_rows`` takes them.
row_values = operator.itemgetter(*TYPED_FIELDS)


def _text_field(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return _len(len(data)) + data


def _choice_field(value: str) -> bytes:
    field = _CHOICE_FIELDS.get(value)
    return field if field is not None else _text_field(value)


def _text_array(elements: list[str] | None) -> bytes:
    """A ``text[]`` field, its length first (NULL for None, ``{}`` for an empty list)."""
    if elements is None:
        return _NULL
    parts = [_array_head(1, 0, _TEXT_OID, len(elements), 1) if elements
             else struct.pack(">iii", 0, 0, _TEXT_OID)]
    for element in elements:
        data = element.encode()
        parts += (_len(len(data)), data)
    body = b"".join(parts)
    return _len(len(body)) + body


def _tail_fields(trace_id: str | None, span_id: str | None, elements: list[str] | None,
                 fingerprint: str | None, version: int | None) -> bytes:
    array = _text_array(elements)
    return b"".join((
        _text_field(trace_id), _text_field(span_id), array, _text_field(fingerprint),
        _NULL if version is None else _INT2_LEN + int(version).to_bytes(2, "big", signed=True)))


#: Microseconds in an hour, and hours from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
MICROS_PER_HOUR = 3_600_000_000
HOURS_TO_PG_EPOCH = 262_968


def encode_rows(values: Sequence[tuple[Any, ...]], attributes_json: Sequence[bytes],
                project: bytes, ingested_at: bytes, hours: set[int]) -> list[bytes]:
    """``encode_row`` of each log of one request, byte for byte, at less CPU per log.

    Args:
        values: Each log's record values in ``events.TYPED_FIELDS`` order (a
            ``TypedRequest``'s, or ``row_values`` of a record), all of one project and one
            ``ingested_at``.
        attributes_json: ``orjson.dumps`` of each log's ``attributes`` (a dict), which
            the caller made anyway while validating them.
        project: ``project_bytes`` of their project.
        ingested_at: ``timestamp_field`` of their ``ingested_at``.
        hours: Gets the hour (since 2000-01-01 UTC, floored) of each record's timestamp: the
            microseconds are at hand here, and the queue entry lists the hours.
    """
    # What a request's logs share is encoded once: the fields before the id, ingested_at with
    # each level/log_type/importance triple, each set of the five fields naming where a log
    # comes from (one SDK sends the same), and the five last ones when all null (no trace,
    # no error). A log then costs one join of ~10 parts instead of one part per field.
    head = _FIELDS + project + _UUID_LEN
    choices: dict[tuple[str, str, str], bytes] = {}
    origins: dict[tuple[str | None, ...], bytes] = {}
    out: list[bytes] = []
    add = out.append
    hour = hours.add
    for (log_id, timestamp, level, log_type, importance, message, error_type, error_message,
         stack_trace, environment, release, sdk_version, platform, platform_version, _,
         trace_id, span_id, elements, fingerprint, version, _), attributes in zip(
            values, attributes_json, strict=True):
        key = (level, log_type, importance)
        middle = choices.get(key)
        if middle is None:
            middle = choices[key] = ingested_at + b"".join(map(_choice_field, key))
        origin = (environment, release, sdk_version, platform, platform_version)
        where = origins.get(origin)
        if where is None:
            where = origins[origin] = b"".join(map(_text_field, origin))
        if message is None:
            text = _NULL
        else:
            data = message.encode()
            text = _len(len(data)) + data
        micros = (timestamp - _PG_EPOCH) // _MICROSECOND
        hour(micros // MICROS_PER_HOUR)
        add(b"".join((
            head, bytes.fromhex(log_id.replace("-", "")), _timestamp(8, micros), middle, text,
            _NULL3 if error_type is None and error_message is None and stack_trace is None
            else _text_field(error_type) + _text_field(error_message) + _text_field(stack_trace),
            where, _jsonb_head(len(attributes) + 1, 1), attributes,
            _NULL5 if (trace_id is None and span_id is None and elements is None
                       and fingerprint is None and version is None)
            else _tail_fields(trace_id, span_id, elements, fingerprint, version))))
    return out


def decode_row(row: bytes) -> dict[str, Any]:
    """A tuple made by ``encode_row`` as a JSON-ready dict (ISO times, parsed attributes).

    Raises:
        ValueError: ``row`` is not such a tuple.
    """
    try:
        return _decode(memoryview(row))
    except (struct.error, IndexError, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"not a binary COPY tuple of logs: {exc}") from exc


def _decode(view: memoryview) -> dict[str, Any]:
    (count,) = struct.unpack_from(">h", view, 0)
    if count != len(LOG_COLUMNS):
        raise ValueError(f"not a binary COPY tuple of logs: {count} fields")
    at = 2
    values: list[bytes | None] = []
    for _ in range(count):
        (size,) = struct.unpack_from(">i", view, at)
        at += 4
        if size < 0:
            values.append(None)
            continue
        values.append(bytes(view[at:at + size]))
        at += size
    if at != len(view):
        raise ValueError(f"not a binary COPY tuple of logs: {len(view) - at} bytes left over")
    out: dict[str, Any] = {}
    for name, raw in zip(LOG_COLUMNS, values, strict=True):
        if raw is None:
            out[name] = None
        elif name in ("project_id", "id"):
            out[name] = str(uuid.UUID(bytes=raw))
        elif name in ("timestamp", "ingested_at"):
            (micros,) = struct.unpack(">q", raw)
            out[name] = (_PG_EPOCH + micros * _MICROSECOND).isoformat()
        elif name == "attributes":
            out[name] = orjson.loads(raw[1:])
        elif name == "client_fingerprint":
            out[name] = _decode_text_array(raw)
        elif name == "fingerprint_version":
            out[name] = int.from_bytes(raw, "big", signed=True)
        else:
            out[name] = raw.decode()
    return out


def _decode_text_array(raw: bytes) -> list[str]:
    ndim, _, _ = struct.unpack_from(">iii", raw, 0)
    if ndim == 0:
        return []
    (size, _) = struct.unpack_from(">ii", raw, 12)
    at, items = 20, []
    for _ in range(size):
        (length,) = struct.unpack_from(">i", raw, at)
        at += 4
        items.append(raw[at:at + length].decode())
        at += length
    return items


def record_of(log: Mapping[str, Any]) -> dict[str, Any]:
    """A ``decode_row`` dict back into what ``encode_row`` takes (replaying dead letters).

    Raises:
        ValueError: ``log`` lacks what every log has (an id, a timestamp, a level...).
    """
    missing = [n for n in ("id", "timestamp", "level", "log_type", "importance") if not log.get(n)]
    if missing:
        raise ValueError(f"not a log: no {', '.join(missing)}")
    record = {name: log.get(name) for name in LOG_COLUMNS}
    for name in ("timestamp", "ingested_at"):
        value = record[name]
        record[name] = datetime.fromisoformat(value) if isinstance(value, str) else value
    if record["ingested_at"] is None:
        record["ingested_at"] = datetime.now(UTC)
    return record
