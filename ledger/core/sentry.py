"""The Sentry SDK protocol, as data: envelopes and events in, native log records out.

Sentry SDKs (every language) post *envelopes* to ``/api/<number>/envelope/`` (older ones post a
bare event to ``/api/<number>/store/``). This module parses an envelope into its items and maps
each ``event`` item to one native log record (DESIGN §3), which then goes through the same
validation, queue, storage, grouping and notifications as any other log. It knows nothing of
HTTP: the gateway's ``routes/sentry.py`` reads the body and authenticates.

Mapping decisions:

- An event with ``exception.values`` becomes an ``exception`` log; ``error_type`` and
  ``error_message`` come from the last value (the one raised; Sentry orders the chain oldest
  first), and the whole chain is kept twice: as ``exceptions`` (Sentry's exception interface,
  frames caller-first, for structured grouping) and as a readable ``stack_trace`` in the
  platform's own format (Python traceback, V8 ``at fn (file:line:col)``, Java, Go, Ruby), so
  that the text-based grouping works with it too.
- Any other event (``capture_message``, the logging integrations) becomes a ``logger`` log.
- Sentry levels map onto ours (``fatal`` → ``critical``, ``log`` → ``info``); no level is
  ``error``, as in Sentry.
- The event id is the ``log_id``, so an SDK that retries is stored once.
- Tags, user, contexts, breadcrumbs (the newest ``MAX_BREADCRUMBS``), request (without
  cookies and credentials), sdk, server name, transaction, logger and extra go into
  ``attributes``, bounded in depth and size so that an event is never refused for them.
- Text that is longer than a field allows is cut, not refused: an SDK cannot fix its event.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
import orjson

from ledger.core.events import (
    MAX_ATTRIBUTES_BYTES,
    MAX_BATCH_ITEMS,
    TEXT_LIMITS,
    parse_json_body,
)
from ledger.errors import InvalidInputError

__all__ = [
    "Envelope",
    "EnvelopeItem",
    "MalformedEnvelope",
    "dsn",
    "event_to_record",
    "key_from_auth_header",
    "key_from_dsn",
    "parse_envelope",
    "parse_event",
    "render_stack_trace",
]

#: Item types whose payload is an error event (Sentry's ``event``; ``security`` reports and the
#: like are ignored).
EVENT_ITEM_TYPES = frozenset(("event",))
#: Items per envelope (SDKs send one event each; as many as a native batch holds).
MAX_ITEMS = MAX_BATCH_ITEMS
MAX_EXCEPTIONS = 25
MAX_FRAMES = 250
MAX_CONTEXT_LINES = 5
MAX_BREADCRUMBS = 100
MAX_TAGS = 200
#: Depth of the attribute values copied from an event (the record allows 16 in all).
MAX_VALUE_DEPTH = 10
MAX_VALUE_CHARS = 4096
#: Room kept below the record's attributes cap for the keys this module adds itself.
ATTRIBUTES_BUDGET = MAX_ATTRIBUTES_BYTES - 4096

_LEVELS = {"fatal": "critical", "critical": "critical", "error": "error",
           "warning": "warning", "warn": "warning", "info": "info", "log": "info",
           "debug": "debug"}
_SECRET_HEADERS = frozenset(("cookie", "set-cookie", "authorization", "proxy-authorization",
                             "x-api-key", "x-sentry-auth", "x-csrftoken", "x-csrf-token"))
#: An event id as Sentry writes it and ``event_id_of`` returns it: 32 lowercase hex digits.
_CANONICAL_ID = re.compile(r"[0-9a-f]{32}")
_AUTH_KEY = re.compile(r"sentry_key\s*=\s*([^,\s]+)")
_FRAME_TEXT = frozenset(("filename", "abs_path", "module", "function", "context_line",
                         "package"))
_FRAME_NUMBERS = frozenset(("lineno", "colno"))
_FRAME_CONTEXT = frozenset(("pre_context", "post_context"))
_PY_BUILTIN_MODULES = frozenset(("builtins", "__builtin__", "exceptions"))


class MalformedEnvelope(InvalidInputError):
    """The Sentry envelope or event is malformed."""

    code = "malformed_envelope"


@dataclass(frozen=True, slots=True)
class EnvelopeItem:
    """One item of an envelope: its header (``type``, ``length``...) and raw payload."""

    index: int
    type: str
    headers: dict[str, Any]
    payload: bytes


@dataclass(slots=True)
class Envelope:
    """A parsed envelope: its header and items, in order."""

    headers: dict[str, Any]
    items: list[EnvelopeItem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many items of each type the envelope holds."""
        out: dict[str, int] = {}
        for item in self.items:
            out[item.type] = out.get(item.type, 0) + 1
        return out


# -- DSN and key ------------------------------------------------------------------------------


def dsn(full_key: str, host: str, dsn_id: int, scheme: str = "http") -> str:
    """The DSN a Sentry SDK is configured with: ``<scheme>://<key>@<host>/<dsn id>``.

    The key goes in as the DSN's public key: Ledger keys (``ledger_<id>_<secret>``, lowercase
    base32 and underscores) match the ``\\w+`` the JavaScript SDK's DSN regex asks for.
    """
    return f"{scheme}://{full_key}@{host}/{dsn_id}"


def key_from_dsn(value: str) -> str | None:
    """The public key (user part) of a DSN, e.g. an envelope header's ``dsn``."""
    try:
        return urlsplit(value.strip()).username or None
    except ValueError:
        return None


def key_from_auth_header(value: str) -> str | None:
    """The ``sentry_key`` of an ``X-Sentry-Auth`` (or ``Authorization: Sentry …``) header."""
    match = _AUTH_KEY.search(value)
    return match.group(1) if match else None


# -- envelopes --------------------------------------------------------------------------------


def _header(line: bytes, what: str) -> dict[str, Any]:
    if not line.strip():
        return {}
    try:
        value = parse_json_body(line)
    except InvalidInputError as exc:
        raise MalformedEnvelope(f"{what} is not JSON: {exc.message}") from None
    if not isinstance(value, dict):
        raise MalformedEnvelope(f"{what} must be a JSON object")
    return value


def parse_envelope(body: bytes) -> Envelope:
    """Split an envelope into its header and items (payloads are not decoded here).

    Format: a JSON header line, then per item a JSON header line and a payload, which is
    ``length`` bytes when the item header says so and otherwise runs to the next newline.

    Raises:
        MalformedEnvelope: a header that is not a JSON object, a length past the end, a
            missing item type or more than ``MAX_ITEMS`` items; the message names the item.
    """
    end = body.find(b"\n")
    first = body if end < 0 else body[:end]
    envelope = Envelope(_header(first, "the envelope header"))
    position = len(body) if end < 0 else end + 1
    size = len(body)
    while position < size:
        index = len(envelope.items)
        end = body.find(b"\n", position)
        line = body[position:] if end < 0 else body[position:end]
        position = size if end < 0 else end + 1
        if not line.strip():
            continue  # a trailing newline, or blank lines between items
        if index >= MAX_ITEMS:
            raise MalformedEnvelope(f"the envelope holds more than {MAX_ITEMS} items")
        headers = _header(line, f"the header of item {index}")
        item_type = headers.get("type")
        if not isinstance(item_type, str) or not item_type:
            raise MalformedEnvelope(f"item {index} has no type in its header")
        length = headers.get("length")
        if length is not None:
            if type(length) is not int or length < 0:
                raise MalformedEnvelope(f"item {index} ({item_type}): length must be a"
                                        " non-negative integer")
            if position + length > size:
                raise MalformedEnvelope(f"item {index} ({item_type}): length {length} runs"
                                        " past the end of the envelope")
            payload = body[position:position + length]
            position += length
            if position < size and body[position:position + 1] == b"\n":
                position += 1
        else:
            end = body.find(b"\n", position)
            payload = body[position:] if end < 0 else body[position:end]
            position = size if end < 0 else end + 1
        envelope.items.append(EnvelopeItem(index, item_type, headers, payload))
    return envelope


def parse_event(payload: bytes, where: str) -> dict[str, Any]:
    """Decode one event payload (a JSON object).

    Raises:
        MalformedEnvelope: not JSON or not an object; ``where`` names the item in the message.
    """
    try:
        value = parse_json_body(payload)
    except InvalidInputError as exc:
        raise MalformedEnvelope(f"{where} is not a JSON event: {exc.message}") from None
    if not isinstance(value, dict):
        raise MalformedEnvelope(f"{where} must be a JSON object")
    return value


# -- events -> records ------------------------------------------------------------------------


def _clip(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit]


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return value if isinstance(value, str) else str(value)


_SCALAR_TYPES = frozenset((bool, int, float, type(None)))


def _bounded(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` at most ``MAX_VALUE_DEPTH`` deep, long strings cut."""
    kind = type(value)
    if kind is str:
        return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + "…"
    if kind in _SCALAR_TYPES:
        return value
    if kind is dict and depth < MAX_VALUE_DEPTH:
        # Most values (tags, breadcrumbs, user) are flat: copy their scalars without a call.
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = key if type(key) is str else str(key)
            item_kind = type(item)
            if item_kind is str:
                out[name] = (item if len(item) <= MAX_VALUE_CHARS
                             else item[:MAX_VALUE_CHARS] + "…")
            elif item_kind in _SCALAR_TYPES:
                out[name] = item
            else:
                out[name] = _bounded(item, depth + 1)
        return out
    return _bounded_other(value, depth)


def _bounded_other(value: Any, depth: int) -> Any:
    """``_bounded`` for lists, subclasses, other objects and what is too deep."""
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + "…"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth >= MAX_VALUE_DEPTH:
        return "[too deep]"
    if isinstance(value, dict):
        return {str(k): _bounded(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_bounded(v, depth + 1) for v in value]
    return str(value)


def event_id_of(event: Mapping[str, Any], fallback: str | None = None) -> str:
    """The event's id as 32 lowercase hex digits (Sentry's form), or a new one."""
    for candidate in (event.get("event_id"), fallback):
        if type(candidate) is str and _CANONICAL_ID.fullmatch(candidate):
            return candidate  # what SDKs send: already the form uuid.UUID(...).hex gives
        if isinstance(candidate, str):
            try:
                return uuid.UUID(candidate).hex
            except ValueError:
                continue
    return uuid.uuid4().hex


def _hyphenated(event_id: str) -> str:
    """``str(uuid.UUID(event_id))``, by slicing when the id is already canonical (per event)."""
    if type(event_id) is str and _CANONICAL_ID.fullmatch(event_id):
        e = event_id
        return f"{e[:8]}-{e[8:12]}-{e[12:16]}-{e[16:20]}-{e[20:]}"
    return str(uuid.UUID(event_id))


def _values(container: Any) -> list[Any]:
    """Sentry's ``{"values": [...]}`` wrapper, or a bare list (both are sent)."""
    if isinstance(container, dict):
        container = container.get("values")
    return container if isinstance(container, list) else []


def _context_lines(value: Any, *, nearest_last: bool) -> list[str] | None:
    """The ``MAX_CONTEXT_LINES`` lines nearest the frame's line: the end of ``pre_context``
    (``nearest_last``), the start of ``post_context``."""
    if not isinstance(value, list):
        return None
    kept = value[-MAX_CONTEXT_LINES:] if nearest_last else value[:MAX_CONTEXT_LINES]
    return [(line if isinstance(line, str) else str(line))[:MAX_VALUE_CHARS] for line in kept]


def _frame(raw: Any) -> dict[str, Any] | None:
    if type(raw) is not dict:
        return None
    frame: dict[str, Any] = {}
    # The hot loop of a conversion (30 frames an event): one pass over what the SDK sent.
    for key, value in raw.items():
        kind = type(value)
        if key in _FRAME_TEXT:
            if kind is str:
                frame[key] = value if len(value) <= 1024 else value[:1024]
            elif kind is int or kind is float:
                frame[key] = str(value)
        elif key in _FRAME_NUMBERS:
            if kind is int:
                frame[key] = value
        elif key == "in_app":
            if kind is bool:
                frame[key] = value
        elif key in _FRAME_CONTEXT:
            lines = _context_lines(value, nearest_last=key == "pre_context")
            if lines is not None:
                frame[key] = lines
    return frame


_FrameText = Annotated[str, msgspec.Meta(max_length=1024)]
_Lines = Annotated[list[Annotated[str, msgspec.Meta(max_length=MAX_VALUE_CHARS)]],
                   msgspec.Meta(max_length=MAX_CONTEXT_LINES)]


class _KeptFrame(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A frame ``_frame`` would copy key for key: only keys it keeps, each with a value of the
    type it keeps as it is, within its limit, and no null (which it drops)."""

    filename: _FrameText | msgspec.UnsetType = msgspec.UNSET
    abs_path: _FrameText | msgspec.UnsetType = msgspec.UNSET
    module: _FrameText | msgspec.UnsetType = msgspec.UNSET
    function: _FrameText | msgspec.UnsetType = msgspec.UNSET
    context_line: _FrameText | msgspec.UnsetType = msgspec.UNSET
    package: _FrameText | msgspec.UnsetType = msgspec.UNSET
    lineno: int | msgspec.UnsetType = msgspec.UNSET
    colno: int | msgspec.UnsetType = msgspec.UNSET
    in_app: bool | msgspec.UnsetType = msgspec.UNSET
    pre_context: _Lines | msgspec.UnsetType = msgspec.UNSET
    post_context: _Lines | msgspec.UnsetType = msgspec.UNSET
    #: Not kept, but the Python SDK sends it with every frame (locals): dropped below.
    vars: Any = msgspec.UNSET


_KEPT_FRAMES = list[_KeptFrame]


def _frames(stacktrace: Any) -> list[dict[str, Any]]:
    raw = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    if not isinstance(raw, list):
        return []
    if len(raw) > MAX_FRAMES:  # keep both ends: where it started and where it crashed
        raw = raw[:MAX_FRAMES // 2] + raw[-(MAX_FRAMES // 2):]
    try:
        # One check in C of the whole list instead of _frame's loop over every key of every
        # frame (the conversion's hot spot): frames already in the kept shape are kept as
        # they are, less ``vars``. Anything else (a null, another key) takes _frame.
        msgspec.convert(raw, _KEPT_FRAMES)
    except msgspec.ValidationError:
        return [f for f in (_frame(r) for r in raw) if f is not None]
    return [{k: v for k, v in r.items() if k != "vars"} if "vars" in r else r for r in raw]


def _exception(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {
        "type": _clip(_str(raw.get("type")), TEXT_LIMITS["error_type"]) or "",
        "value": _clip(_str(raw.get("value")), TEXT_LIMITS["error_message"]) or "",
    }
    module = _str(raw.get("module"))
    if module:
        out["module"] = module[:1024]
    if isinstance(raw.get("mechanism"), dict):
        out["mechanism"] = _bounded(raw["mechanism"], MAX_VALUE_DEPTH - 2)
    out["stacktrace"] = {"frames": _frames(raw.get("stacktrace"))}
    return out


def exceptions_of(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The event's exception chain, oldest first, in the exception-interface shape."""
    values = _values(event.get("exception"))
    if len(values) > MAX_EXCEPTIONS:  # the raised one is last: keep the newest
        values = values[-MAX_EXCEPTIONS:]
    chain = [e for e in (_exception(v) for v in values) if e is not None]
    chain = [e for e in chain if e["type"] or e["value"] or e["stacktrace"]["frames"]]
    for exc in chain:
        if not exc["type"] and not exc["value"]:
            exc["type"] = "Error"  # frames alone: what Sentry shows, and what the record says
    return chain


_PERCENT = re.compile(r"%[sdirf%]")


def _formatted(message: Any, params: Any) -> str | None:
    """logging's ``msg % args`` for the plain ``%s %d %r %i %f`` placeholders.

    The Python SDK sends the message and its args unformatted. Real ``%`` formatting is not
    used on purpose: a width such as ``%999999999d`` would build a gigabyte string.
    """
    text = _str(message)
    if text is None or not isinstance(params, list) or not params:
        return text
    remaining = iter(params)

    def substitute(match: re.Match[str]) -> str:
        if match.group() == "%%":
            return "%"
        value = next(remaining, None)
        return match.group() if value is None else str(value)[:MAX_VALUE_CHARS]

    return _PERCENT.sub(substitute, text)


def message_of(event: Mapping[str, Any]) -> str | None:
    """The event's message: ``logentry`` (formatted, or formatted here) or ``message``."""
    for key in ("logentry", "message"):
        value = event.get(key)
        if isinstance(value, dict):
            text = _str(value.get("formatted")) or _formatted(value.get("message"),
                                                              value.get("params"))
        else:
            text = _str(value)
        if text:
            return text
    return None


def _tags(value: Any) -> dict[str, str]:
    pairs: Iterator[tuple[Any, Any]]
    if isinstance(value, dict):
        pairs = iter(value.items())
    elif isinstance(value, list):
        pairs = (tuple(p) for p in value if isinstance(p, list) and len(p) == 2)
    else:
        return {}
    out: dict[str, str] = {}
    for key, tag in pairs:
        if len(out) >= MAX_TAGS:
            break
        if key is not None and tag is not None:
            out[str(key)[:200]] = str(tag)[:200]
    return out


def _request(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("url", "method", "query_string", "data", "env"):
        if value.get(key) is not None:
            out[key] = _bounded(value[key], 2)
    headers = value.get("headers")
    pairs = (headers.items() if isinstance(headers, dict)
             else (tuple(p) for p in headers if isinstance(p, list) and len(p) == 2)
             if isinstance(headers, list) else ())
    kept = {str(k): _bounded(v, 3) for k, v in pairs if str(k).lower() not in _SECRET_HEADERS}
    if kept:
        out["headers"] = kept
    return out


def _breadcrumbs(value: Any) -> list[Any]:
    crumbs = [c for c in _values(value) if isinstance(c, dict)]
    return [_bounded(c, 2) for c in crumbs[-MAX_BREADCRUMBS:]]


def _attributes(event: Mapping[str, Any], event_id: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {"sentry_event_id": event_id}
    tags = _tags(event.get("tags"))
    if tags:
        attributes["tags"] = tags
    for key in ("user", "contexts", "sdk", "extra"):
        if isinstance(event.get(key), dict) and event[key]:
            attributes[key] = _bounded(event[key], 1)
    for key in ("server_name", "transaction", "logger", "dist"):
        text = _str(event.get(key))
        if text:
            attributes[key] = text[:1024]
    request = _request(event.get("request"))
    if request:
        attributes["request"] = request
    breadcrumbs = _breadcrumbs(event.get("breadcrumbs"))
    if breadcrumbs:
        attributes["breadcrumbs"] = breadcrumbs
    # Never refuse an event for its size: shed the bulkiest optional parts first.
    for bulky in ("breadcrumbs", "extra", "contexts", "request", "user", "tags"):
        if len(orjson.dumps(attributes)) <= ATTRIBUTES_BUDGET:
            break
        attributes.pop(bulky, None)
        attributes.setdefault("truncated", []).append(bulky)
    return attributes


def _trace_ids(event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    contexts = event.get("contexts")
    trace = contexts.get("trace") if isinstance(contexts, dict) else None
    if not isinstance(trace, dict):
        return None, None
    trace_id, span_id = _str(trace.get("trace_id")), _str(trace.get("span_id"))
    ok_trace = trace_id if trace_id and re.fullmatch(r"[0-9a-fA-F]{32}", trace_id) else None
    ok_span = span_id if span_id and re.fullmatch(r"[0-9a-fA-F]{16}", span_id) else None
    return ok_trace, ok_span


def _fingerprint(value: Any) -> list[str] | None:
    if not isinstance(value, list) or not value:
        return None
    return [str(part) for part in value if part is not None][:32] or None


def event_to_record(event: Mapping[str, Any], *, event_id: str,
                    received_at: datetime | None = None) -> dict[str, Any]:
    """The native log record (DESIGN §3) of one Sentry event.

    Args:
        event: The decoded event.
        event_id: Its id (``event_id_of``), which becomes the record's ``log_id``.
        received_at: Used as the timestamp when the event has none (naive means UTC).

    Returns:
        A record for ``validate_log``; it still goes through every rule there.
    """
    exceptions = exceptions_of(event)
    platform = _str(event.get("platform")) or "other"
    level = _LEVELS.get((_str(event.get("level")) or "error").lower(), "error")
    timestamp = event.get("timestamp")
    if timestamp is None or isinstance(timestamp, (dict, list, bool)):
        timestamp = (received_at or datetime.now(UTC)).isoformat()
    sdk: Mapping[str, Any] = event["sdk"] if isinstance(event.get("sdk"), dict) else {}
    trace_id, span_id = _trace_ids(event)
    message = message_of(event)
    record: dict[str, Any] = {
        "log_id": _hyphenated(event_id),
        "timestamp": timestamp,
        "level": level,
        "log_type": "logger",
        "platform": _clip(platform, TEXT_LIMITS["platform"]),
        "environment": _clip(_str(event.get("environment")), TEXT_LIMITS["environment"]),
        "release": _clip(_str(event.get("release")), TEXT_LIMITS["release"]),
        "sdk_version": _clip(_str(sdk.get("version")), TEXT_LIMITS["sdk_version"]),
        "attributes": _attributes(event, event_id),
        "trace_id": trace_id,
        "span_id": span_id,
        "fingerprint": _fingerprint(event.get("fingerprint")),
    }
    if exceptions:
        raised = exceptions[-1]
        record["log_type"] = "exception"
        record["error_type"] = raised["type"] or "Error"
        record["error_message"] = raised["value"]
        record["stack_trace"] = _clip(render_stack_trace(exceptions, platform),
                                      TEXT_LIMITS["stack_trace"])
        record["exceptions"] = exceptions
        message = message or (f"{record['error_type']}: {raised['value']}" if raised["value"]
                              else record["error_type"])
    record["message"] = _clip(message, TEXT_LIMITS["message"])
    return record


# -- readable stack traces --------------------------------------------------------------------


def _where(frame: Mapping[str, Any]) -> str:
    return str(frame.get("abs_path") or frame.get("filename") or frame.get("module") or "?")


def _python(exceptions: list[dict[str, Any]]) -> str:
    blocks: list[str] = []
    for position, exc in enumerate(exceptions):
        if position:
            source = (exc.get("mechanism") or {}).get("source")
            blocks.append("\nThe above exception was the direct cause of the following"
                          " exception:\n" if source == "__cause__" else
                          "\nDuring handling of the above exception, another exception"
                          " occurred:\n")
        lines: list[str] = []
        frames = exc["stacktrace"]["frames"]
        if frames:
            lines.append("Traceback (most recent call last):")
        append = lines.append
        for frame in frames:  # 30 frames an event: ``_where`` inlined, each strip done once
            get = frame.get
            where = get("abs_path") or get("filename") or get("module") or "?"
            append(f'  File "{where}", line {get("lineno", "?")},'
                   f' in {get("function") or "<module>"}')
            context = get("context_line")
            if context:
                context = context.strip()
                if context:
                    append(f"    {context}")
        module = exc.get("module")
        name = (f"{module}.{exc['type']}" if module and module not in _PY_BUILTIN_MODULES
                else exc["type"])
        lines.append(f"{name}: {exc['value']}" if exc["value"] else name)
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def _headline(exc: Mapping[str, Any], qualified: bool = False) -> str:
    name = exc["type"] or "Error"
    if qualified and exc.get("module"):
        name = f"{exc['module']}.{name}"
    return f"{name}: {exc['value']}" if exc["value"] else name


def _newest_first(exceptions: list[dict[str, Any]], head: str, caused_by: str,
                  frame_line: Any, qualified: bool = False) -> str:
    """Formats whose chains start with the raised error and whose frames start at the crash."""
    lines: list[str] = []
    for position, exc in enumerate(reversed(exceptions)):
        lines.append((caused_by if position else head) + _headline(exc, qualified))
        lines.extend(frame_line(frame) for frame in reversed(exc["stacktrace"]["frames"]))
    return "\n".join(lines)


def _v8_frame(frame: Mapping[str, Any]) -> str:
    place = _where(frame)
    if frame.get("lineno") is not None:
        place += f":{frame['lineno']}"
        if frame.get("colno") is not None:
            place += f":{frame['colno']}"
    function = frame.get("function")
    return f"    at {function} ({place})" if function and function != "?" else f"    at {place}"


def _java_frame(frame: Mapping[str, Any]) -> str:
    module, function = frame.get("module"), frame.get("function") or "?"
    qualified = f"{module}.{function}" if module else function
    return f"\tat {qualified}({frame.get('filename') or 'Unknown Source'}" + (
        f":{frame['lineno']})" if frame.get("lineno") is not None else ")")


def _go(exceptions: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for position, exc in enumerate(reversed(exceptions)):
        lines.append(("caused by: " if position else "") + _headline(exc))
        frames = exc["stacktrace"]["frames"]
        if frames:
            lines.append("\ngoroutine 1 [running]:")
        for frame in reversed(frames):
            module, function = frame.get("module"), frame.get("function") or "?"
            lines.append(f"{module}.{function}(...)" if module else f"{function}(...)")
            lines.append(f"\t{_where(frame)}:{frame.get('lineno', 0)}")
    return "\n".join(lines)


def _ruby(exceptions: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for position, exc in enumerate(reversed(exceptions)):
        frames = list(reversed(exc["stacktrace"]["frames"]))
        spots = [f"{_where(f)}:{f.get('lineno', 0)}:in '{f.get('function') or '?'}'"
                 for f in frames]
        name = exc["type"] or "RuntimeError"
        first = f"{spots[0]}: {exc['value']} ({name})" if spots else f"{exc['value']} ({name})"
        lines.append(("caused by: " if position else "") + first)
        lines.extend(f"\tfrom {spot}" for spot in spots[1:])
    return "\n".join(lines)


def render_stack_trace(exceptions: list[dict[str, Any]], platform: str) -> str:
    """The chain as the platform itself prints it, for people and the text-based grouping.

    Args:
        exceptions: ``exceptions_of`` output (oldest first, frames caller-first).
        platform: The event's platform (``python``, ``javascript``, ``node``, ``java``...).
    """
    kind = platform.lower()
    if kind == "python":
        return _python(exceptions)
    if kind in ("javascript", "node"):
        return _newest_first(exceptions, "", "Caused by: ", _v8_frame)
    if kind == "go":
        return _go(exceptions)
    if kind == "ruby":
        return _ruby(exceptions)
    # Java, and a Java-like form for everything else (PHP, .NET, native...).
    return _newest_first(exceptions, "", "Caused by: ", _java_frame, qualified=kind == "java")
