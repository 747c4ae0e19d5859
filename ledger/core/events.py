"""Log records: the one place they are validated and enriched (DESIGN §2.6, §2.7, §3, §10).

The gateway parses a body with ``parse_json_body`` and checks it with ``validate_log`` /
``validate_batch``; ``ingest`` adds the stored fields with ``enrich``; the writers turn records into
``COPY`` rows with ``to_row``. Nothing else decides what a valid log is, so a log the gateway
accepts is a log the database stores (the reference design validated twice, with different rules).
Ingest tries ``typed_records`` first: the common-case body read by msgspec straight into typed
fields, with the same outcome as those steps; any other body is left to them.

Rules, beyond DESIGN §3:

- ``timestamp`` is an ISO-8601 string (``Z``, offsets, up to nanosecond fractions; naive means
  UTC) or a number of seconds since the epoch; numbers of magnitude ≥ 1e11 are milliseconds
  (1e11 s is the year 5138, 1e11 ms is 1973). It is stored in UTC.
- ``level``, ``log_type`` and ``importance`` are matched case-insensitively and stored lowercase.
- An ``exception`` log needs a non-empty ``error_type`` and an ``error_message``, which may be
  empty (``raise KeyError()`` has no message).
- ``trace_id`` / ``span_id`` that are empty or all zeros mean "no trace" (OpenTelemetry sends
  them that way) and are stored as null; otherwise they are stored lowercase.
- ``log_id`` is stored in canonical form (lowercase, hyphenated).
- NUL characters are removed and lone surrogates replaced by U+FFFD in every string, attribute
  keys and values included, because PostgreSQL refuses both; lengths are checked afterwards.
- JSON ``null`` for an optional field means "not given". Unknown fields are ignored.
- ``exceptions`` (optional) is Sentry's exception interface (``ledger.core.exception_values``);
  it is stored in ``attributes`` under the reserved key ``$exceptions``, which a client's own
  attributes may not use. When ``error_type``/``error_message`` are absent they are taken from
  its last (raised) exception.

Pure functions, no I/O.
"""

from __future__ import annotations

import math
import os
import re
import struct
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
import orjson

from ledger.core import exception_values
from ledger.core.exception_values import STORAGE_KEY as EXCEPTIONS_KEY
from ledger.core.fingerprints import Fingerprint
from ledger.core.grouping_rules import DEFAULT_GROUPING, GroupingConfig
from ledger.errors import InvalidInputError

__all__ = [
    "CONSTRAINTS",
    "IMPORTANCES",
    "LEVELS",
    "LOG_COLUMNS",
    "LOG_TYPES",
    "InvalidBody",
    "InvalidLog",
    "ItemError",
    "enrich",
    "is_error_event",
    "parse_json_body",
    "to_row",
    "typed_records",
    "uuid7",
    "uuid7_strs",
    "validate_batch",
    "validate_log",
]

LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_TYPES = ("console", "logger", "exception", "network", "database", "endpoint", "custom")
IMPORTANCES = ("critical", "high", "standard", "low")
ERROR_LEVELS = frozenset(("error", "critical"))

#: Column order of the ``logs`` table, as the writers' ``COPY`` sends it.
LOG_COLUMNS: tuple[str, ...] = (
    "project_id",
    "id",
    "timestamp",
    "ingested_at",
    "level",
    "log_type",
    "importance",
    "message",
    "error_type",
    "error_message",
    "stack_trace",
    "environment",
    "release",
    "sdk_version",
    "platform",
    "platform_version",
    "attributes",
    "trace_id",
    "span_id",
    "client_fingerprint",
    "error_fingerprint",
    "fingerprint_version",
)

MAX_FUTURE = timedelta(minutes=5)
MAX_BATCH_ITEMS = 1000
MAX_ATTRIBUTES_BYTES = 100_000
MAX_ATTRIBUTES_DEPTH = 16
MAX_FINGERPRINT_ITEMS = 32
MAX_FINGERPRINT_ITEM_CHARS = 255
#: Longest accepted value of each optional text field, in characters.
TEXT_LIMITS: Mapping[str, int] = {
    "message": 10_000,
    "error_type": 255,
    "error_message": 5_000,
    "stack_trace": 50_000,
    "environment": 20,
    "release": 100,
    "sdk_version": 20,
    "platform": 50,
    "platform_version": 50,
}
#: The rules above in a form SDKs can read (served by ``GET /settings``).
CONSTRAINTS: Mapping[str, Any] = {
    "levels": list(LEVELS),
    "log_types": list(LOG_TYPES),
    "importances": list(IMPORTANCES),
    "max_chars": dict(TEXT_LIMITS),
    "max_attributes_bytes": MAX_ATTRIBUTES_BYTES,
    "max_attributes_depth": MAX_ATTRIBUTES_DEPTH,
    "max_fingerprint_items": MAX_FINGERPRINT_ITEMS,
    "max_fingerprint_item_chars": MAX_FINGERPRINT_ITEM_CHARS,
    "max_batch_items": MAX_BATCH_ITEMS,
    "max_future_seconds": int(MAX_FUTURE.total_seconds()),
}

_MAX_TIMESTAMP_CHARS = 64
_EPOCH_MILLIS_FROM = 1e11
_LEVEL_MAP = {v: v for v in LEVELS}
_LOG_TYPE_MAP = {v: v for v in LOG_TYPES}
_IMPORTANCE_MAP = {v: v for v in IMPORTANCES}
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_UTF8_BOM = b"\xef\xbb\xbf"


class InvalidLog(InvalidInputError):
    """The log record is invalid."""

    code = "invalid_log"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class InvalidBody(InvalidLog):
    """The request body is not valid JSON."""

    code = "invalid_body"

    def __init__(self, reason: str) -> None:
        super().__init__("body", reason)


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why the item at ``index`` of a batch was rejected."""

    index: int
    field: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The item error as the API reports it."""
        return {"index": self.index, "field": self.field, "reason": self.reason}


# --------------------------------------------------------------------------------------------
# Body
# --------------------------------------------------------------------------------------------


# Left to right, every escape is consumed whole (an escaped backslash before ``ud800`` stays
# text): a high+low pair is kept, a lone surrogate escape becomes U+FFFD, any other escape stays.
_LONE_SURROGATE_ESCAPES = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
    r"|\\.",
    re.DOTALL,
)


def _without_lone_surrogate(match: re.Match[str]) -> str:
    escape = match.group()
    if len(escape) == 6 and escape[2] in "dD" and escape[3] in "89abcdefABCDEF":
        return "\\ufffd"
    return escape


def parse_json_body(raw: bytes | bytearray | memoryview | str) -> Any:
    """Parse a request body as JSON.

    Invalid UTF-8 is repaired (U+FFFD) rather than refused, and so are ``\\ud800``-style lone
    surrogate escapes; a UTF-8 byte-order mark is skipped. One parser reads every body, so numbers
    follow one rule: integers beyond 64 bits are read as floats (as JSON readers in other
    languages do), and nothing stored can later fail to be written back as JSON.

    Args:
        raw: The body, after any gzip decompression and size cap.

    Returns:
        The decoded JSON value.

    Raises:
        InvalidBody: The body is empty, malformed, or nested more than 1 024 levels deep.
    """
    if isinstance(raw, memoryview | bytearray):
        raw = bytes(raw)
    if isinstance(raw, bytes) and raw.startswith(_UTF8_BOM):
        raw = raw[3:]
    if not raw:
        raise InvalidBody("the request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        error = exc
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                error = exc
    else:
        text = raw
    if "surrogate" in str(error):
        # orjson refuses lone surrogate escapes (``\\ud800``). Replacing them by U+FFFD in the
        # text, as the validators would anyway, keeps ONE parser for every body: a second one
        # read numbers differently, so the same log was accepted or refused depending on an
        # escape somewhere else in the request. Only this rare path pays for the extra pass.
        try:
            return orjson.loads(_LONE_SURROGATE_ESCAPES.sub(_without_lone_surrogate, text))
        except orjson.JSONDecodeError as exc:
            error = exc
    if "depth" in str(error) or "recursion" in str(error):
        raise InvalidBody("the JSON is nested too deeply") from error
    raise InvalidBody(f"malformed JSON: {error}") from error


# --------------------------------------------------------------------------------------------
# Fields
# --------------------------------------------------------------------------------------------


def _clean_str(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # A round trip through UTF-16 joins valid surrogate pairs and turns lone ones into
            # U+FFFD.
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _text(value: Any, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise InvalidLog(field, f"{field} must be a string")
    text = _clean_str(value)
    if len(text) > limit:
        raise InvalidLog(field, f"{field} must be at most {limit} characters, got {len(text)}")
    return text


def _choice(value: Any, field: str, choices: dict[str, str], default: str | None) -> str:
    if value is None:
        if default is None:
            raise InvalidLog(field, f"{field} is required: one of {', '.join(choices)}")
        return default
    if type(value) is str:
        found = choices.get(value) or choices.get(value.lower())
        if found is not None:
            return found
    raise InvalidLog(field, f"{field} must be one of {', '.join(choices)}")


@dataclass(slots=True)  # not frozen: a frozen dataclass is slower to make, once per request
class _Window:
    """The accepted timestamps of one request: computed once per request, not once per log."""

    latest: datetime
    earliest: datetime
    retention_days: int

    @classmethod
    def of(cls, now: datetime, retention_days: int) -> _Window:
        now = _utc(now)
        return cls(now + MAX_FUTURE, now - timedelta(days=retention_days), retention_days)


def _timestamp(value: Any, window: _Window) -> datetime:
    kind = type(value)
    if kind is str:
        if len(value) > _MAX_TIMESTAMP_CHARS:
            raise InvalidLog("timestamp", "timestamp must be an ISO-8601 date and time")
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidLog(
                "timestamp",
                "timestamp must be an ISO-8601 date and time, e.g. 2024-05-01T12:00:00Z",
            ) from None
    elif kind is int or kind is float:
        try:
            seconds = value / 1000 if abs(value) >= _EPOCH_MILLIS_FROM else value
            ts = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):  # also NaN and infinities
            raise InvalidLog("timestamp", "timestamp is out of range") from None
    elif isinstance(value, datetime):
        ts = value
    elif value is None:
        raise InvalidLog("timestamp", "timestamp is required")
    else:
        raise InvalidLog(
            "timestamp", "timestamp must be an ISO-8601 string or a number of epoch seconds"
        )
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    elif ts.tzinfo is not UTC:
        try:
            ts = ts.astimezone(UTC)
        except OverflowError:
            raise InvalidLog("timestamp", "timestamp is out of range") from None
    if ts > window.latest:
        raise InvalidLog("timestamp", "timestamp is more than 5 minutes in the future")
    if ts < window.earliest:
        raise InvalidLog(
            "timestamp",
            f"timestamp is older than the project's retention ({window.retention_days} days)",
        )
    return ts


def _json_value(value: Any, depth: int) -> Any:
    """A cleaned copy of a JSON value; ``depth`` is that of the container holding it."""
    kind = type(value)
    if kind is str:
        return _clean_str(value)
    if kind is dict:
        if depth >= MAX_ATTRIBUTES_DEPTH:
            raise InvalidLog(
                "attributes", f"attributes must be nested at most {MAX_ATTRIBUTES_DEPTH} levels"
            )
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidLog("attributes", "attributes keys must be strings")
            out[_clean_str(key)] = _json_value(item, depth + 1)
        return out
    if kind is list or kind is tuple:
        if depth >= MAX_ATTRIBUTES_DEPTH:
            raise InvalidLog(
                "attributes", f"attributes must be nested at most {MAX_ATTRIBUTES_DEPTH} levels"
            )
        return [_json_value(item, depth + 1) for item in value]
    if value is None or kind is bool or kind is int or kind is float:
        return value
    raise InvalidLog("attributes", f"attributes cannot hold a {kind.__name__}")


#: How orjson writes a NUL character inside a string.
_JSON_NUL = b"\\u0000"


def _attributes_as_parsed(value: dict[str, Any]) -> dict[str, Any] | None:
    """``value`` itself when ``_json_value`` would copy it unchanged; else ``None``.

    Only for values straight from ``parse_json_body``: they hold JSON types only (no tuples,
    datetimes or non-string keys, which orjson would write and ``_json_value`` refuses). orjson
    refuses lone surrogates, writes a NUL as ``\\u0000``, and a JSON text with at most
    ``MAX_ATTRIBUTES_DEPTH`` opening brackets (counting any inside strings too) cannot nest
    deeper than that: one C pass over the JSON instead of a Python copy of every value.
    """
    try:
        data = orjson.dumps(value)
    except orjson.JSONEncodeError:  # a lone surrogate, an integer beyond 64 bits
        return None
    if _JSON_NUL in data or data.count(b"{") + data.count(b"[") > MAX_ATTRIBUTES_DEPTH:
        return None
    if len(data) > MAX_ATTRIBUTES_BYTES:
        raise InvalidLog(
            "attributes",
            f"attributes must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON, got {len(data)}",
        )
    return value


def _attributes(value: Any, from_json: bool = False) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise InvalidLog("attributes", "attributes must be a JSON object")
    if not value:
        return {}
    if EXCEPTIONS_KEY in value:
        raise InvalidLog(f"attributes.{EXCEPTIONS_KEY}",
                         f"attributes.{EXCEPTIONS_KEY} is reserved; send the exception chain as"
                         " the exceptions field")
    if from_json:
        as_parsed = _attributes_as_parsed(value)
        if as_parsed is not None:
            return as_parsed
    cleaned: dict[str, Any] = _json_value(value, 0)
    try:
        size = len(orjson.dumps(cleaned))
    except orjson.JSONEncodeError as exc:  # an integer beyond 64 bits
        raise InvalidLog("attributes", f"attributes are not valid JSON: {exc}") from None
    if size > MAX_ATTRIBUTES_BYTES:
        raise InvalidLog(
            "attributes",
            f"attributes must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON, got {size}",
        )
    return cleaned


def _endpoint(attributes: dict[str, Any]) -> None:
    endpoint = attributes.get("endpoint")
    if type(endpoint) is not dict:
        raise InvalidLog(
            "attributes.endpoint",
            "endpoint logs need attributes.endpoint with method, path, status_code and duration_ms",
        )
    for key in ("method", "path"):
        if type(endpoint.get(key)) is not str or not endpoint[key]:
            raise InvalidLog(f"attributes.endpoint.{key}", f"endpoint.{key} must be a string")
    status = endpoint.get("status_code")
    if type(status) is not int or not 100 <= status <= 599:
        raise InvalidLog(
            "attributes.endpoint.status_code",
            "endpoint.status_code must be an integer from 100 to 599",
        )
    duration = endpoint.get("duration_ms")
    if (
        (type(duration) is not int and type(duration) is not float)
        or not math.isfinite(duration)
        or duration < 0
    ):
        raise InvalidLog(
            "attributes.endpoint.duration_ms", "endpoint.duration_ms must be a number >= 0"
        )


def _log_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if type(value) is str and len(value) <= 45:
        if _CANONICAL_UUID.fullmatch(value):
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise InvalidLog("log_id", "log_id must be a UUID")


def _hex_id(value: Any, field: str, pattern: re.Pattern[str], size: int) -> str | None:
    if value is None or value == "":
        return None
    if type(value) is str and len(value) == size:
        value = value.lower()
        if pattern.fullmatch(value):
            return None if value.count("0") == size else value
    raise InvalidLog(field, f"{field} must be {size} hexadecimal characters")


def _client_fingerprint(value: Any) -> list[str] | None:
    if value is None:
        return None
    if (
        type(value) is not list
        or not 1 <= len(value) <= MAX_FINGERPRINT_ITEMS
        or not all(type(v) is str for v in value)
    ):
        raise InvalidLog(
            "fingerprint",
            f"fingerprint must be a list of 1 to {MAX_FINGERPRINT_ITEMS} strings",
        )
    cleaned = [_clean_str(v) for v in value]
    if any(len(v) > MAX_FINGERPRINT_ITEM_CHARS for v in cleaned):
        raise InvalidLog(
            "fingerprint",
            f"fingerprint elements must be at most {MAX_FINGERPRINT_ITEM_CHARS} characters",
        )
    return cleaned


def _exceptions(value: Any) -> list[dict[str, Any]] | None:
    try:
        return exception_values.validate_exceptions(value)
    except exception_values.ShapeError as exc:
        raise InvalidLog(exc.field, exc.reason) from None


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def validate_log(obj: Any, *, now: datetime, retention_days: int,
                 from_json: bool = False) -> dict[str, Any]:
    """Check one log record against DESIGN §3 and return its cleaned fields.

    Args:
        obj: The decoded JSON of one log.
        now: The current time (naive means UTC).
        retention_days: The project's retention; older timestamps are refused.
        from_json: ``obj`` comes straight from ``parse_json_body`` (JSON types only, no lone
            surrogates): lets clean attributes through without a copy. Same result either way.

    Returns:
        The known fields only, every key present (``None`` when not given): ``timestamp``
        (aware UTC datetime), ``level``, ``log_type``, ``importance``, the text fields,
        ``attributes`` (a dict, ``{}`` when not given), ``trace_id``, ``span_id``,
        ``client_fingerprint`` (from ``fingerprint``) and ``log_id`` (canonical UUID string).

    Raises:
        InvalidLog: A rule is broken; ``field`` and ``reason`` say which and why.
    """
    return _validate(obj, _Window.of(now, retention_days), from_json)


#: The optional text fields checked before ``exceptions`` and after ``attributes``, with their
#: limits: the order in which the first broken rule is reported.
_TEXTS_FIRST = tuple((f, TEXT_LIMITS[f])
                     for f in ("message", "error_type", "error_message", "stack_trace"))
_TEXTS_LAST = tuple((f, TEXT_LIMITS[f]) for f in (
    "environment", "release", "sdk_version", "platform", "platform_version"))


def _texts(get: Any, fields: tuple[tuple[str, int], ...]) -> list[str | None]:
    # An absent field costs a lookup, not a call.
    return [None if (value := get(field)) is None else _text(value, field, limit)
            for field, limit in fields]


def _validate(obj: Any, window: _Window, from_json: bool) -> dict[str, Any]:
    # The fields are checked in the order the first broken rule is reported in; an absent
    # optional field costs a dict lookup, not a call (this runs once per log, DESIGN §9).
    if not isinstance(obj, dict):
        raise InvalidLog("log", "a log must be a JSON object")
    get = obj.get
    timestamp = _timestamp(get("timestamp"), window)
    # A value already in canonical form is found with one lookup; _choice does the rest.
    level = get("level")
    if type(level) is not str or (level := _LEVEL_MAP.get(level)) is None:
        level = _choice(get("level"), "level", _LEVEL_MAP, None)
    log_type = get("log_type")
    if type(log_type) is not str or (log_type := _LOG_TYPE_MAP.get(log_type)) is None:
        log_type = _choice(get("log_type"), "log_type", _LOG_TYPE_MAP, "logger")
    importance = get("importance")
    if type(importance) is not str or (importance := _IMPORTANCE_MAP.get(importance)) is None:
        importance = _choice(get("importance"), "importance", _IMPORTANCE_MAP, "standard")
    message, error_type, error_message, stack_trace = _texts(get, _TEXTS_FIRST)
    exceptions = get("exceptions")
    if exceptions is not None:
        exceptions = _exceptions(exceptions)
    if exceptions:
        limits = TEXT_LIMITS
        raised = exceptions[-1]
        if not error_type and raised.get("type"):
            error_type = raised["type"][: limits["error_type"]]
        if error_message is None and raised.get("value") is not None:
            error_message = raised["value"][: limits["error_message"]]
    if log_type == "exception":
        if not error_type:
            raise InvalidLog("error_type", "exception logs need error_type")
        if error_message is None:
            raise InvalidLog("error_message", "exception logs need error_message")
    attributes = get("attributes")
    attributes = {} if attributes is None else _attributes(attributes, from_json)
    if log_type == "endpoint":
        _endpoint(attributes)
    environment, release, sdk_version, platform, platform_version = _texts(get, _TEXTS_LAST)
    trace_id = get("trace_id")
    if trace_id is not None:
        trace_id = _hex_id(trace_id, "trace_id", _HEX32, 32)
    span_id = get("span_id")
    if span_id is not None:
        span_id = _hex_id(span_id, "span_id", _HEX16, 16)
    fingerprint = get("fingerprint")
    if fingerprint is not None:
        fingerprint = _client_fingerprint(fingerprint)
    log_id = get("log_id")
    if log_id is not None:
        log_id = _log_id(log_id)
    return {
        "timestamp": timestamp,
        "level": level,
        "log_type": log_type,
        "importance": importance,
        "message": message,
        "error_type": error_type,
        "error_message": error_message,
        "stack_trace": stack_trace,
        "exceptions": exceptions,
        "environment": environment,
        "release": release,
        "sdk_version": sdk_version,
        "platform": platform,
        "platform_version": platform_version,
        "attributes": attributes,
        "trace_id": trace_id,
        "span_id": span_id,
        "client_fingerprint": fingerprint,
        "log_id": log_id,
    }


def validate_batch(
    items: Any, *, now: datetime, retention_days: int, max_items: int = MAX_BATCH_ITEMS,
    from_json: bool = False,
) -> tuple[list[dict[str, Any]], list[ItemError]]:
    """Validate the ``logs`` of a batch request, item by item.

    Args:
        items: The ``logs`` value of the body.
        now: The current time (naive means UTC).
        retention_days: The project's retention.
        max_items: The most items a batch may hold.
        from_json: ``items`` come straight from ``parse_json_body`` (see ``validate_log``).

    Returns:
        The cleaned valid items in their original order, and one ``ItemError`` per invalid item
        with its index in ``items``.

    Raises:
        InvalidLog: ``items`` is not a list of 1 to ``max_items`` elements (field ``logs``).
    """
    if type(items) is not list:
        raise InvalidLog("logs", f"logs must be a list of 1 to {max_items} log objects")
    if not items:
        raise InvalidLog("logs", "logs must hold at least one log")
    if len(items) > max_items:
        raise InvalidLog("logs", f"logs must hold at most {max_items} logs, got {len(items)}")
    window = _Window.of(now, retention_days)
    valid: list[dict[str, Any]] = []
    errors: list[ItemError] = []
    for index, item in enumerate(items):
        try:
            valid.append(_validate(item, window, from_json))
        except InvalidLog as exc:
            errors.append(ItemError(index, exc.field, exc.reason))
    return valid, errors


# --------------------------------------------------------------------------------------------
# Enrichment
# --------------------------------------------------------------------------------------------

_uuid7_lock = threading.Lock()
_uuid7_last_ms = 0
_uuid7_counter = 0
_COUNTER_BITS = 42  # rand_a (12 bits) + the top 30 bits of rand_b
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
#: Random bytes for the ids, read from the OS this many at a time: one ``os.urandom`` per id
#: was a system call per log, about a fifth of ingest's CPU per log (issue 17).
_RANDOM_CHUNK = 10 * 512
_uuid7_random = b""
_uuid7_random_at = 0


def _forget_random() -> None:
    # A forked child must not hand out the random bytes its parent will use too.
    global _uuid7_random, _uuid7_random_at
    _uuid7_random, _uuid7_random_at = b"", 0


os.register_at_fork(after_in_child=_forget_random)


def _uuid7_int() -> int:
    # RFC 9562 §6.2 method 1: a 42-bit counter seeded at random each millisecond (top bit clear,
    # so that it has room to grow) and incremented within it; the last 32 bits stay random. If
    # the clock goes back, or the counter overflows, the last timestamp is reused or advanced,
    # so ids from this process only ever increase.
    global _uuid7_last_ms, _uuid7_counter
    ms = time.time_ns() // 1_000_000
    with _uuid7_lock:
        rand = int.from_bytes(_random_bytes(10))
        if ms > _uuid7_last_ms:
            _uuid7_last_ms = ms
            _uuid7_counter = (rand >> 32) & (_COUNTER_MAX >> 1)
        else:
            _uuid7_counter += 1
            if _uuid7_counter > _COUNTER_MAX:
                _uuid7_last_ms += 1
                _uuid7_counter = (rand >> 32) & (_COUNTER_MAX >> 1)
            ms = _uuid7_last_ms
        counter = _uuid7_counter
    return (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (counter >> 30) << 64
        | 0b10 << 62
        | (counter & 0x3FFF_FFFF) << 32
        | rand & 0xFFFF_FFFF
    )


def _random_bytes(size: int) -> bytes:
    """``size`` random bytes from the buffer (``size`` <= ``_RANDOM_CHUNK``); under the lock."""
    global _uuid7_random, _uuid7_random_at
    at = _uuid7_random_at
    if at + size > len(_uuid7_random):
        _uuid7_random, at = os.urandom(_RANDOM_CHUNK), 0
    _uuid7_random_at = at + size
    return _uuid7_random[at:at + size]


def uuid7_strs(count: int) -> list[str]:
    """``count`` new UUIDv7s as canonical strings, as ``count`` calls of ``uuid7`` would make
    them (increasing, and after every id made before), but under one lock and one clock read.

    A request's logs get their ids this way: one id at a time was a fifth of ingest's CPU per
    log (issue 17). Within one call the ids share their millisecond and take consecutive
    counter values, so the first 16 hex digits are formatted once per call.
    """
    global _uuid7_last_ms, _uuid7_counter
    if count <= 1:  # a single-log request: the one-id path is cheaper
        return [_uuid7_str()] if count == 1 else []
    if count > _RANDOM_CHUNK // 4:
        return [*uuid7_strs(_RANDOM_CHUNK // 4), *uuid7_strs(count - _RANDOM_CHUNK // 4)]
    ms = time.time_ns() // 1_000_000
    with _uuid7_lock:
        if ms > _uuid7_last_ms:
            seed = int.from_bytes(_random_bytes(6)) & (_COUNTER_MAX >> 1)
            first = seed
        else:
            first = _uuid7_counter + 1
            ms = _uuid7_last_ms
        last = first + count - 1
        if last <= _COUNTER_MAX:
            _uuid7_last_ms, _uuid7_counter = ms, last
            rand = memoryview(_random_bytes(4 * count)).cast("I")
    if last > _COUNTER_MAX:  # about once in 2**41 ids: one at a time across the overflow
        return [_uuid7_str() for _ in range(count)]
    out: list[str] = []
    at = 0
    while at < count:
        # The ids up to where the counter's low 30 bits wrap share their first 16 hex digits,
        # and their last 16 are 0b10, those 30 bits (consecutive) and 32 random bits: they
        # are packed as 64-bit integers and turned to hex in one call each (the per-id format
        # of each tail was 0.72 µs per id, this about 0.4, measured over 1 000-id calls).
        counter = first + at
        low_bits = counter & 0x3FFF_FFFF
        run = min(count - at, (1 << 30) - low_bits)
        head = f"{(ms & 0xFFFF_FFFF_FFFF) << 16 | 0x7000 | counter >> 30:016x}"
        prefix = f"{head[:8]}-{head[8:12]}-{head[12:]}-"
        base = 0x8000_0000_0000_0000 | low_bits << 32
        tails = struct.pack(f">{run}Q", *[base + (offset << 32) + r
                                          for offset, r in enumerate(rand[at:at + run])]).hex()
        out += [f"{prefix}{tails[i:i + 4]}-{tails[i + 4:i + 16]}" for i in range(0, 16 * run, 16)]
        at += run
    return out


def uuid7() -> uuid.UUID:
    """A new UUIDv7 (RFC 9562): time-ordered, and strictly increasing within this process."""
    return uuid.UUID(int=_uuid7_int())


def _uuid7_str() -> str:
    h = f"{_uuid7_int():032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_error_event(record: Mapping[str, Any]) -> bool:
    """True for an ``exception`` log or an ``error``/``critical`` one: those get a fingerprint,
    an error group and a notification."""
    return record.get("log_type") == "exception" or record.get("level") in ERROR_LEVELS


def enrich(clean: dict[str, Any], *, project_id: str, now: datetime,
           grouping: GroupingConfig | None = None,
           fresh_id: str | None = None) -> dict[str, Any]:
    """Add the stored fields to a validated log.

    Args:
        clean: The output of ``validate_log``.
        project_id: The project the log belongs to (kept as given).
        now: The ingest time (naive means UTC).
        grouping: The project's grouping setting (fingerprint rules, in-app include/exclude).
        fresh_id: The id for a log without a ``log_id``, from ``uuid7_strs`` (one call for a
            whole request); a new one is made when not given.

    Returns:
        A new dict with a key for every ``LOG_COLUMNS`` entry, in that order, plus
        ``fingerprint_components`` (the explanation of the fingerprint, for the error group).
        ``id`` is the client's ``log_id`` or a new UUIDv7, as a canonical string;
        ``error_fingerprint``, ``fingerprint_version`` and ``fingerprint_components`` are
        ``None`` unless ``is_error_event``.
    """
    get = clean.get
    record: dict[str, Any] = {
        "project_id": project_id,
        "id": get("log_id") or fresh_id or _uuid7_str(),
        "timestamp": clean["timestamp"],
        "ingested_at": _utc(now),
        "level": clean["level"],
        "log_type": clean["log_type"],
        "importance": clean["importance"],
        "message": get("message"),
        "error_type": get("error_type"),
        "error_message": get("error_message"),
        "stack_trace": get("stack_trace"),
        "environment": get("environment"),
        "release": get("release"),
        "sdk_version": get("sdk_version"),
        "platform": get("platform"),
        "platform_version": get("platform_version"),
        "attributes": _with_exceptions(get("attributes") or {}, get("exceptions")),
        "trace_id": get("trace_id"),
        "span_id": get("span_id"),
        "client_fingerprint": get("client_fingerprint"),
        "error_fingerprint": None,
        "fingerprint_version": None,
        "fingerprint_components": None,
    }
    if record["log_type"] == "exception" or record["level"] in ERROR_LEVELS:  # is_error_event
        fingerprint = (grouping or DEFAULT_GROUPING).fingerprint(
            error_type=record["error_type"],
            error_message=record["error_message"],
            message=record["message"],
            stack_trace=record["stack_trace"],
            client_fingerprint=record["client_fingerprint"],
            exceptions=clean.get("exceptions"),
            platform=record["platform"],
            level=record["level"],
            environment=record["environment"],
            release=record["release"],
        )
        record["error_fingerprint"] = fingerprint.hash
        record["fingerprint_version"] = fingerprint.version
        record["fingerprint_components"] = fingerprint.components
    return record


# --------------------------------------------------------------------------------------------
# The common case, typed
# --------------------------------------------------------------------------------------------

# The optional text fields with their limits, checked by msgspec while it reads the body.
_Message = Annotated[str, msgspec.Meta(max_length=TEXT_LIMITS["message"])]
_ErrorType = Annotated[str, msgspec.Meta(max_length=TEXT_LIMITS["error_type"])]
_ErrorMessage = Annotated[str, msgspec.Meta(max_length=TEXT_LIMITS["error_message"])]
_StackTrace = Annotated[str, msgspec.Meta(max_length=TEXT_LIMITS["stack_trace"])]
_Environment = Annotated[str, msgspec.Meta(max_length=TEXT_LIMITS["environment"])]
_Release = Annotated[str, msgspec.Meta(max_length=TEXT_LIMITS["release"])]
_SdkVersion = Annotated[str, msgspec.Meta(max_length=TEXT_LIMITS["sdk_version"])]
_Platform = Annotated[str, msgspec.Meta(max_length=TEXT_LIMITS["platform"])]
_PlatformVersion = Annotated[str, msgspec.Meta(max_length=TEXT_LIMITS["platform_version"])]


class _TypedLog(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A log as the common case sends it: what msgspec refuses here takes the general path.

    An unknown field is refused (rather than skipped) because a skipped value is one msgspec
    reads and orjson might not (a number beyond a double, nesting beyond 1 024): only what
    is decoded can be trusted to decode alike. No cycles can form: ``gc=False`` is safe.
    """

    timestamp: str | int | float | None = None
    level: str | None = None
    log_type: str | None = None
    importance: str | None = None
    message: _Message | None = None
    error_type: _ErrorType | None = None
    error_message: _ErrorMessage | None = None
    stack_trace: _StackTrace | None = None
    #: A Sentry exception chain, left as its JSON text: it is parsed by orjson, as the general
    #: path parses it, and checked by ``exception_values.validate_common`` (empty: absent).
    exceptions: msgspec.Raw = msgspec.Raw()
    environment: _Environment | None = None
    release: _Release | None = None
    sdk_version: _SdkVersion | None = None
    platform: _Platform | None = None
    platform_version: _PlatformVersion | None = None
    attributes: dict[str, Any] | None = None
    trace_id: str | None = None
    span_id: str | None = None
    fingerprint: list[str] | None = None
    log_id: str | None = None


class _TypedBatch(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    logs: list[_TypedLog]


_RECORD_KEYS = (*LOG_COLUMNS, "fingerprint_components")
_TYPED_LOG = msgspec.json.Decoder(_TypedLog)
_TYPED_BATCH = msgspec.json.Decoder(_TypedBatch)
#: Absent (None) is the default (none for level); an unknown spelling is left to ``_choice``.
_LEVEL_OR_NONE: dict[str | None, str] = {v: v for v in LEVELS}
_LOG_TYPE_OR_DEFAULT: dict[str | None, str] = {v: v for v in LOG_TYPES}
_LOG_TYPE_OR_DEFAULT[None] = "logger"
_IMPORTANCE_OR_DEFAULT: dict[str | None, str] = {v: v for v in IMPORTANCES}
_IMPORTANCE_OR_DEFAULT[None] = "standard"


#: The fields of a ``TypedRequest`` value tuple: a record's keys without the two it shares.
TYPED_FIELDS = tuple(k for k in _RECORD_KEYS if k not in ("project_id", "ingested_at"))


@dataclass(slots=True)
class TypedRequest:
    """The enriched logs of one common-case request, as tuples (``typed_records``).

    ``values[i]`` holds log ``i``'s record values in ``TYPED_FIELDS`` order; ``record(i)`` is
    the dict ``enrich`` gives for it. Dicts are only made where they are needed (error events,
    the live tail): for the rest the row encoder reads the tuples.
    """

    project_id: str
    ingested_at: datetime
    values: list[tuple[Any, ...]]
    #: ``orjson.dumps`` of each log's ``attributes``.
    attributes_json: list[bytes]
    #: The indexes of the error events (``is_error_event``), in order.
    errors: list[int]

    def record(self, index: int) -> dict[str, Any]:
        """Log ``index`` as ``enrich``'s record: every ``_RECORD_KEYS`` key, in order."""
        value = self.values[index]
        return dict(zip(_RECORD_KEYS, (self.project_id, value[0], value[1], self.ingested_at,
                                       *value[2:]), strict=True))

    def records(self) -> list[dict[str, Any]]:
        """Every log's record, in request order."""
        return [self.record(index) for index in range(len(self.values))]

    def ids(self) -> list[str]:
        """Every log's id, in request order."""
        return [value[0] for value in self.values]


def typed_records(body: bytes, *, single: bool, project_id: str, now: datetime,
                  retention_days: int, grouping: GroupingConfig | None = None,
                  ) -> TypedRequest | None:
    """The enriched records of a body in the common case, or ``None`` for any other body.

    One msgspec pass reads the body into typed fields, checking types and text lengths in C;
    what is left runs once per log without the intermediate dicts of ``validate_log`` and
    ``enrich`` (issue 17: that was most of ingest's CPU per log). The common case is a body
    whose every log is valid, has only known fields, an ``exceptions`` chain (if any) that
    ``exception_values.validate_common`` takes (frames as SDKs send them), attributes of at most
    ``MAX_ATTRIBUTES_DEPTH`` brackets and integers within 64 bits, and no ``\\u0000``
    anywhere. For it the records are those of ``parse_json_body`` → ``validate_batch`` (with
    ``from_json``) → ``enrich``, in order, ids aside. Anything else, valid or not, answers
    ``None`` and goes down that path whole, so that what is refused, how, and how numbers
    are read stays that path's alone. Why it is alike:

    - msgspec refuses every lone surrogate and invalid UTF-8 (orjson too; the general path
      then repairs them), and no string holds a NUL (the escape is looked for in the body):
      ``_clean_str`` would change nothing;
    - its ``max_length`` counts characters, as the text limits do;
    - for JSON both read the same values (duplicate keys: the last wins, in the first's
      place), except integers beyond 64 bits, which msgspec reads as ``int`` and orjson as
      ``float``: only attributes can hold them here and ``orjson.dumps`` refuses them;
    - ``exceptions`` is left as JSON text by msgspec and parsed by orjson, the general path's
      parser, so its values are that path's; the shape check then only accepts chains that
      ``validate_exceptions`` would keep as they are, frame dicts and their key order too;
    - the rest are the general path's own checks (``_timestamp``, ``_choice``, ``_hex_id``,
      ``_client_fingerprint``, ``_log_id``, ``_endpoint``, the fingerprint), any refusal of
      which means ``None``.

    Args:
        body: The request body (decompressed).
        single: The body is one log (``INGEST_SHAPE_SINGLE``), else ``{"logs": [...]}``.
        project_id: As for ``enrich``.
        now: The ingest time (naive means UTC).
        retention_days: The project's retention.
        grouping: As for ``enrich``.

    Returns:
        The records as a ``TypedRequest`` (tuples, each one's ``attributes`` as
        ``orjson.dumps`` writes them, the indexes of the error events).
    """
    if type(body) is not bytes:
        return None
    if body.startswith(_UTF8_BOM):
        body = body[3:]
    if _JSON_NUL in body:  # perhaps only an escaped backslash before "u0000": general path
        return None
    try:
        if single:
            logs = [_TYPED_LOG.decode(body)]
        else:
            logs = _TYPED_BATCH.decode(body).logs
            if not 1 <= len(logs) <= MAX_BATCH_ITEMS:
                return None
    except (msgspec.MsgspecError, RecursionError):  # RecursionError: nested too deeply
        return None
    window = _Window.of(now, retention_days)
    earliest, latest, fromisoformat = window.earliest, window.latest, datetime.fromisoformat
    ingested_at = _utc(now)
    fingerprinter = grouping or DEFAULT_GROUPING
    values: list[tuple[Any, ...]] = []
    attributes_json: list[bytes] = []
    errors: list[int] = []
    fingerprints: dict[tuple[Any, ...], Fingerprint] = {}
    try:
        for log, fresh_id in zip(logs, uuid7_strs(len(logs)), strict=True):
            value = log.timestamp
            if type(value) is str and len(value) <= _MAX_TIMESTAMP_CHARS:
                # _timestamp's string case inlined (a call per log was ~10 % of ingest's
                # samples); whatever it would refuse sends the body down the general path.
                timestamp = fromisoformat(value)  # ValueError: caught below
                zone = timestamp.tzinfo
                if zone is not UTC:
                    timestamp = (timestamp.replace(tzinfo=UTC) if zone is None
                                 else timestamp.astimezone(UTC))  # OverflowError: caught
                if not earliest <= timestamp <= latest:
                    return None
            else:
                timestamp = _timestamp(value, window)
            if (level := _LEVEL_OR_NONE.get(log.level)) is None:
                level = _choice(log.level, "level", _LEVEL_MAP, None)
            if (log_type := _LOG_TYPE_OR_DEFAULT.get(log.log_type)) is None:
                log_type = _choice(log.log_type, "log_type", _LOG_TYPE_MAP, "logger")
            if (importance := _IMPORTANCE_OR_DEFAULT.get(log.importance)) is None:
                importance = _choice(log.importance, "importance", _IMPORTANCE_MAP, "standard")
            error_type, error_message = log.error_type, log.error_message
            exceptions = _common_exceptions(log.exceptions) if log.exceptions else None
            if exceptions:  # _validate's defaults from the raised exception
                raised = exceptions[-1]
                if not error_type and raised["type"]:
                    error_type = raised["type"]  # within the limit: checked as the chain's
                if error_message is None and raised["value"] is not None:
                    error_message = raised["value"]
            if log_type == "exception" and (not error_type or error_message is None):
                return None
            attributes = log.attributes
            if attributes:
                if EXCEPTIONS_KEY in attributes:
                    return None
                data = orjson.dumps(attributes)  # JSONEncodeError: an integer beyond 64 bits
                if (len(data) > MAX_ATTRIBUTES_BYTES
                        or data.count(b"{") + data.count(b"[") > MAX_ATTRIBUTES_DEPTH):
                    return None
            else:
                attributes, data = {}, b"{}"
            if exceptions:
                # enrich's merge, and its JSON; the chain's own JSON is shorter than that, so
                # it is only written apart when that is over the chain's limit.
                attributes = {**attributes, EXCEPTIONS_KEY: exceptions}
                data = orjson.dumps(attributes)
                if (len(data) > exception_values.MAX_EXCEPTIONS_BYTES
                        and len(orjson.dumps(exceptions)) > exception_values.MAX_EXCEPTIONS_BYTES):
                    return None
            if log_type == "endpoint":
                _endpoint(attributes)
            trace_id = None if log.trace_id is None else _hex_id(log.trace_id, "trace_id",
                                                                  _HEX32, 32)
            span_id = None if log.span_id is None else _hex_id(log.span_id, "span_id",
                                                               _HEX16, 16)
            fingerprint = (None if log.fingerprint is None
                           else _client_fingerprint(log.fingerprint))
            log_id = None if log.log_id is None else _log_id(log.log_id)
            if log_type == "exception" or level in ERROR_LEVELS:  # is_error_event
                # Once per distinct error of the request: an error repeated in one batch (a
                # loop failing, a retry storm) has the same inputs, and a fingerprint is
                # ~19 µs of CPU even for a two-line stack trace (an eighth of the CPU of a
                # batch with one error in 20 logs). The chain's JSON text stands for it. The
                # records then share the components dict, which nothing changes later.
                key = (error_type, error_message, log.message, log.stack_trace,
                       None if fingerprint is None else tuple(fingerprint),
                       bytes(log.exceptions) if exceptions else None, log.platform, level,
                       log.environment, log.release)
                made = fingerprints.get(key)
                if made is None:
                    made = fingerprints[key] = fingerprinter.fingerprint(
                        error_type=error_type, error_message=error_message,
                        message=log.message, stack_trace=log.stack_trace,
                        client_fingerprint=fingerprint, exceptions=exceptions,
                        platform=log.platform, level=level, environment=log.environment,
                        release=log.release)
                errors.append(len(values))
                made_hash: str | None = made.hash
                made_version: int | None = made.version
                made_components: dict[str, Any] | None = made.components
            else:
                made_hash = made_version = made_components = None
            # One tuple per log, in TYPED_FIELDS order: a dict per log (built, then freed)
            # was ~0.75 µs of it, and the row encoder read it back field by field; prepare
            # went from 6.5-6.8 to 5.6-5.8 µs per log (bench_prepare.py, issue 17).
            values.append((
                log_id or fresh_id, timestamp, level, log_type, importance, log.message,
                error_type, error_message, log.stack_trace, log.environment, log.release,
                log.sdk_version, log.platform, log.platform_version, attributes, trace_id,
                span_id, fingerprint, made_hash, made_version, made_components))
            attributes_json.append(data)
    except (InvalidLog, orjson.JSONEncodeError, ValueError, OverflowError):
        return None  # exception_values.Uncommon and orjson.JSONDecodeError are ValueErrors
    return TypedRequest(project_id, ingested_at, values, attributes_json, errors)


def _common_exceptions(raw: msgspec.Raw) -> list[dict[str, Any]] | None:
    """The checked chain of a typed log's ``exceptions``, as ``_validate`` makes it.

    Raises:
        ValueError: Not the common case (``exception_values.Uncommon``), or JSON orjson does
            not read (``orjson.JSONDecodeError``: a lone surrogate escape, invalid UTF-8, a
            number beyond a double, nesting beyond 1 024): the general path decides.
    """
    return exception_values.validate_common(orjson.loads(memoryview(raw)))


def _with_exceptions(attributes: dict[str, Any],
                     exceptions: list[dict[str, Any]] | None) -> dict[str, Any]:
    if not exceptions:
        return attributes
    return {**attributes, EXCEPTIONS_KEY: exceptions}


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def to_row(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of an enriched record in ``LOG_COLUMNS`` order, ready for ``COPY``.

    Accepts a record straight from ``enrich`` or one that went through JSON (the Redis stream):
    ``id`` becomes a ``uuid.UUID`` (psycopg's binary COPY needs one for a ``uuid`` column),
    ``timestamp`` and ``ingested_at`` aware ``datetime``s, ``attributes`` a JSON ``str``
    (for ``jsonb``), ``client_fingerprint`` a ``list[str]`` or ``None`` (``text[]``).
    ``project_id`` is passed through as given.
    """
    attributes = record.get("attributes")
    if attributes is None:
        attributes_json = "{}"
    elif isinstance(attributes, str):
        attributes_json = attributes
    else:
        attributes_json = orjson.dumps(attributes).decode()
    get = record.get
    return (
        record["project_id"],
        _as_uuid(record["id"]),
        _as_datetime(record["timestamp"]),
        _as_datetime(record["ingested_at"]),
        record["level"],
        record["log_type"],
        record["importance"],
        get("message"),
        get("error_type"),
        get("error_message"),
        get("stack_trace"),
        get("environment"),
        get("release"),
        get("sdk_version"),
        get("platform"),
        get("platform_version"),
        attributes_json,
        get("trace_id"),
        get("span_id"),
        get("client_fingerprint"),
        get("error_fingerprint"),
        get("fingerprint_version"),
    )
