"""OpenTelemetry logs → Ledger log records (DESIGN §3, §5). Pure functions, no I/O.

An OTLP request is first decoded into the neutral ``OtlpResource``/``OtlpScope``/``OtlpRecord``
form below: OTLP/JSON by ``decode_json`` here, OTLP protobuf by ``ledger.rpc.otlp`` (the only
place allowed to import the generated ``*_pb2`` modules). ``to_records`` then maps that form to
native records, which go through the same validation (``ledger.core.events``), queue and
writers as the native routes: the rules of §3 still run once, in ingest.

Mapping (what a user of an OpenTelemetry SDK or Collector expects):

- severity number → level: 1-8 debug, 9-12 info, 13-16 warning, 17-20 error, 21+ critical;
  else the severity text (``WARN``, ``Error``, ``fatal``…); else ``error`` for an exception and
  ``info`` for anything else.
- body → ``message``: a string as is, any other value rendered (JSON for arrays and maps).
- ``exception.type``/``.message``/``.stacktrace`` → an ``exception`` log.
- HTTP semantic conventions, old and new names (``http.request.method``/``http.method``,
  ``http.route``, ``http.response.status_code``/``http.status_code``, and a duration from
  ``http.server.request.duration`` (s), ``http.server.duration`` (ms) or ``duration_ms``) → an
  ``endpoint`` log, when all four are there and valid.
- resource ``service.version`` → ``release``, ``deployment.environment.name`` (or the older
  ``deployment.environment``) → ``environment``, ``telemetry.sdk.language``/``.version`` →
  ``platform``/``sdk_version``; ``service.name`` is copied into the attributes. The other
  resource attributes are kept under ``attributes.otel.resource`` (those that became a field
  or ``service.name`` are not repeated there).
- trace and span ids kept (hex); a time of 0 takes the observed time, then the time received.
- Every attribute that no mapping consumed stays in ``attributes`` under its own key; the
  resource, the scope and the OTLP-only fields go under ``attributes.otel`` (nothing dropped;
  the severity number and text only when the level does not already say them, e.g. TRACE,
  INFO3 or ``NOTICE``).

A mapping that cannot be completed (a field over its §3 length, an environment of 30 chars, a
trace id of the wrong size, an HTTP log without a route) leaves the record a plain log with its
attributes kept, and over-long texts are cut to their limit (listed in
``attributes.otel.truncated``) rather than refused: an exporter does not resend what was
refused. What §3 still refuses (attributes over 100 000 bytes, a time in the future…) is
reported per record by ingest and answered as an OTLP partial success.

Each record gets a ``log_id`` derived from its content and its position in the request, so an
exporter that resends a request after a timeout does not store it twice (exactly-once, as a
client ``log_id`` gives the native routes). The id keeps UUIDv7's layout (milliseconds of the
record's time first) with version 8, since its other bits are a hash rather than random.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger.core.events import MAX_BATCH_ITEMS, TEXT_LIMITS
from ledger.errors import InvalidInputError

__all__ = [
    "MAX_RECORDS",
    "OtlpDecodeError",
    "OtlpRecord",
    "OtlpResource",
    "OtlpScope",
    "count_records",
    "decode_json",
    "level_of",
    "record_paths",
    "render_value",
    "to_records",
]

#: Records accepted in one request: the native batch limit.
MAX_RECORDS = MAX_BATCH_ITEMS

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
#: Record attributes whose names the mapping itself writes at the top of ``attributes``.
_RESERVED = frozenset(("otel", "endpoint"))
_TEXT_LEVELS = (
    ("trace", "debug"), ("debug", "debug"), ("info", "info"), ("notice", "info"),
    ("warn", "warning"), ("err", "error"), ("fatal", "critical"), ("crit", "critical"),
    ("alert", "critical"), ("emerg", "critical"), ("panic", "critical"),
)
#: Severity numbers and texts that the level alone says (DEBUG, INFO, WARN, ERROR, FATAL).
_PLAIN_NUMBERS = frozenset((5, 9, 13, 17, 21))
_PLAIN_TEXTS = {"debug": ("DEBUG",), "info": ("INFO",), "warning": ("WARN", "WARNING"),
                "error": ("ERROR",), "critical": ("FATAL", "CRITICAL")}
_METHOD_KEYS = ("http.request.method", "http.method")
_STATUS_KEYS = ("http.response.status_code", "http.status_code")
#: Duration attributes and the factor that turns each into milliseconds.
_DURATION_KEYS = (
    ("http.server.request.duration", 1000.0), ("http.client.request.duration", 1000.0),
    ("http.server.duration", 1.0), ("http.client.duration", 1.0),
    ("http.duration_ms", 1.0), ("duration_ms", 1.0),
)
_EXCEPTION_KEYS = ("exception.type", "exception.message", "exception.stacktrace")


class OtlpDecodeError(InvalidInputError):
    """The body is not an OTLP logs request."""

    code = "invalid_otlp"


@dataclass(slots=True)
class OtlpRecord:
    """One OTLP ``LogRecord``; ids are hex, values already plain Python (see ``any_value``)."""

    time_unix_nano: int = 0
    observed_time_unix_nano: int = 0
    severity_number: int = 0
    severity_text: str = ""
    body: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    trace_id: str = ""
    span_id: str = ""
    flags: int = 0
    event_name: str = ""
    dropped_attributes_count: int = 0


@dataclass(slots=True)
class OtlpScope:
    """One ``ScopeLogs``: the instrumentation scope and its records."""

    name: str = ""
    version: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    records: list[OtlpRecord] = field(default_factory=list)


@dataclass(slots=True)
class OtlpResource:
    """One ``ResourceLogs``: the resource's attributes and its scopes."""

    attributes: dict[str, Any] = field(default_factory=dict)
    scopes: list[OtlpScope] = field(default_factory=list)


def count_records(resources: list[OtlpResource]) -> int:
    """How many log records the request holds."""
    return sum(len(scope.records) for resource in resources for scope in resource.scopes)


def record_paths(resources: list[OtlpResource]) -> list[str]:
    """Where each record sits in the request (``resourceLogs[0].scopeLogs[1].logRecords[2]``),
    in the order of ``to_records``: partial-success messages name records this way."""
    return [f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]"
            for r, resource in enumerate(resources)
            for s, scope in enumerate(resource.scopes)
            for i in range(len(scope.records))]


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def finite(value: float) -> float | str:
    """A double as JSON can hold it: NaN and infinities become the strings OTLP/JSON uses."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def render_value(value: Any) -> str | None:
    """A body or attribute value as message text: strings as is, everything else as JSON."""
    if value is None or type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int or type(value) is float:
        return str(value)
    return orjson.dumps(value).decode()


def level_of(severity_number: int, severity_text: str, *, exception: bool = False) -> str:
    """The Ledger level of an OTLP severity (number first, then text, then a default)."""
    if severity_number >= 21:
        return "critical"
    if severity_number >= 17:
        return "error"
    if severity_number >= 13:
        return "warning"
    if severity_number >= 9:
        return "info"
    if severity_number >= 1:
        return "debug"
    text = severity_text.strip().lower()
    if text:
        for prefix, level in _TEXT_LEVELS:
            if text.startswith(prefix):
                return level
    return "error" if exception else "info"


# --------------------------------------------------------------------------------------------
# OTLP/JSON
# --------------------------------------------------------------------------------------------


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    """A field by its lowerCamelCase name (OTLP/JSON) or its proto name (also accepted)."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(obj: Mapping[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if type(value) is not list:
        raise OtlpDecodeError(f"{where}.{camel} must be an array")
    return value


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise OtlpDecodeError(f"{where} must be an object")
    return value


def _uint(value: Any, where: str) -> int:
    """An int64/uint64/fixed64 field: a JSON number or a decimal string."""
    if value is None or value == "":
        return 0
    if type(value) is int:
        number = value
    elif (type(value) is str and value.lstrip("-").isdigit()) or (
            type(value) is float and value.is_integer()):
        number = int(value)
    else:
        raise OtlpDecodeError(f"{where} must be an integer (a number or a decimal string)")
    if number < 0:
        raise OtlpDecodeError(f"{where} must not be negative")
    return number


def _severity_number(value: Any, where: str) -> int:
    if value is None:
        return 0
    if type(value) is str and value.startswith("SEVERITY_NUMBER_"):
        # The enum by name, as proto3 JSON allows: TRACE…FATAL with an optional digit 2-4.
        name = value[len("SEVERITY_NUMBER_"):]
        base = {"UNSPECIFIED": 0, "TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17,
                "FATAL": 21}.get(name.rstrip("234"))
        if base is None:
            raise OtlpDecodeError(f"{where} is not a severity number")
        return base + (int(name[-1]) - 1 if name[-1] in "234" else 0)
    return _uint(value, where)


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if type(value) is not str:
        raise OtlpDecodeError(f"{where} must be a string")
    return value


def any_value(value: Any, where: str) -> Any:
    """An OTLP/JSON ``AnyValue`` as a plain JSON-ready Python value.

    ``bytesValue`` stays base64 text (as OTLP/JSON sends it); an ``intValue`` beyond 64 bits,
    which no exporter produces, is kept as its decimal text.
    """
    if type(value) is not dict:
        raise OtlpDecodeError(f"{where} must be an AnyValue object")
    if not value:
        return None
    key, inner = next(iter(value.items()))
    if len(value) > 1:
        # Normally exactly one member; tolerate extras (a newer kind) by picking a known one.
        for known in ("stringValue", "boolValue", "intValue", "doubleValue", "arrayValue",
                      "kvlistValue", "bytesValue", "string_value", "bool_value", "int_value",
                      "double_value", "array_value", "kvlist_value", "bytes_value"):
            if known in value:
                key, inner = known, value[known]
                break
    if key in ("stringValue", "string_value", "bytesValue", "bytes_value"):
        return _string(inner, f"{where}.{key}")
    if key in ("boolValue", "bool_value"):
        if type(inner) is not bool:
            raise OtlpDecodeError(f"{where}.boolValue must be true or false")
        return inner
    if key in ("intValue", "int_value"):
        if type(inner) is int:
            number = inner
        elif type(inner) is str and inner.lstrip("-").isdigit():
            number = int(inner)
        else:
            raise OtlpDecodeError(f"{where}.intValue must be an integer")
        return number if _INT64_MIN <= number <= _INT64_MAX else str(number)
    if key in ("doubleValue", "double_value"):
        if type(inner) is int or type(inner) is float:
            return finite(float(inner))
        if inner in ("NaN", "Infinity", "-Infinity"):
            return inner
        raise OtlpDecodeError(f"{where}.doubleValue must be a number")
    if key in ("arrayValue", "array_value"):
        items = _list(_object(inner, f"{where}.arrayValue"), "values", "values",
                      f"{where}.arrayValue")
        return [any_value(item, f"{where}.arrayValue.values[{i}]")
                for i, item in enumerate(items)]
    if key in ("kvlistValue", "kvlist_value"):
        pairs = _list(_object(inner, f"{where}.kvlistValue"), "values", "values",
                      f"{where}.kvlistValue")
        return key_values(pairs, f"{where}.kvlistValue.values")
    return None  # an AnyValue kind this version does not know: an empty value


def key_values(pairs: list[Any], where: str) -> dict[str, Any]:
    """A list of OTLP/JSON ``KeyValue`` as a dict (a repeated key: the last one wins)."""
    out: dict[str, Any] = {}
    for i, pair in enumerate(pairs):
        if type(pair) is not dict or type(pair.get("key")) is not str:
            raise OtlpDecodeError(f"{where}[{i}] must be an object with a string key")
        raw = pair.get("value")
        out[pair["key"]] = None if raw is None else any_value(raw, f"{where}[{i}].value")
    return out


def _hex_id(value: Any, where: str) -> str:
    return _string(value, where)


def _json_record(obj: Any, where: str) -> OtlpRecord:
    record = _object(obj, where)
    body = _get(record, "body", "body")
    return OtlpRecord(
        time_unix_nano=_uint(_get(record, "timeUnixNano", "time_unix_nano"),
                             f"{where}.timeUnixNano"),
        observed_time_unix_nano=_uint(
            _get(record, "observedTimeUnixNano", "observed_time_unix_nano"),
            f"{where}.observedTimeUnixNano"),
        severity_number=_severity_number(_get(record, "severityNumber", "severity_number"),
                                         f"{where}.severityNumber"),
        severity_text=_string(_get(record, "severityText", "severity_text"),
                              f"{where}.severityText"),
        body=None if body is None else any_value(body, f"{where}.body"),
        attributes=key_values(_list(record, "attributes", "attributes", where),
                              f"{where}.attributes"),
        trace_id=_hex_id(_get(record, "traceId", "trace_id"), f"{where}.traceId"),
        span_id=_hex_id(_get(record, "spanId", "span_id"), f"{where}.spanId"),
        flags=_uint(_get(record, "flags", "flags"), f"{where}.flags"),
        event_name=_string(_get(record, "eventName", "event_name"), f"{where}.eventName"),
        dropped_attributes_count=_uint(
            _get(record, "droppedAttributesCount", "dropped_attributes_count"),
            f"{where}.droppedAttributesCount"),
    )


def decode_json(parsed: Any) -> list[OtlpResource]:
    """An OTLP/JSON ``ExportLogsServiceRequest`` (already parsed JSON) in the neutral form.

    Raises:
        OtlpDecodeError: the document is not an OTLP logs request; the message says where.
    """
    if type(parsed) is not dict:
        raise OtlpDecodeError('the body must be a JSON object: {"resourceLogs": [...]}')
    resources: list[OtlpResource] = []
    for r, raw_resource in enumerate(_list(parsed, "resourceLogs", "resource_logs", "body")):
        where = f"resourceLogs[{r}]"
        resource_logs = _object(raw_resource, where)
        resource = _object(_get(resource_logs, "resource", "resource"), f"{where}.resource")
        out = OtlpResource(attributes=key_values(
            _list(resource, "attributes", "attributes", f"{where}.resource"),
            f"{where}.resource.attributes"))
        for s, raw_scope in enumerate(_list(resource_logs, "scopeLogs", "scope_logs", where)):
            swhere = f"{where}.scopeLogs[{s}]"
            scope_logs = _object(raw_scope, swhere)
            scope = _object(_get(scope_logs, "scope", "scope"), f"{swhere}.scope")
            out.scopes.append(OtlpScope(
                name=_string(scope.get("name"), f"{swhere}.scope.name"),
                version=_string(scope.get("version"), f"{swhere}.scope.version"),
                attributes=key_values(_list(scope, "attributes", "attributes",
                                            f"{swhere}.scope"), f"{swhere}.scope.attributes"),
                records=[_json_record(item, f"{swhere}.logRecords[{i}]") for i, item in
                         enumerate(_list(scope_logs, "logRecords", "log_records", swhere))],
            ))
        resources.append(out)
    return resources


# --------------------------------------------------------------------------------------------
# Mapping
# --------------------------------------------------------------------------------------------


def _fits(value: Any, limit: int) -> str | None:
    """``value`` when it is a non-empty string of at most ``limit`` characters."""
    return value if type(value) is str and value and len(value) <= limit else None


def _timestamp(ns: int) -> float:
    """Seconds since the epoch, which §3 accepts: a float resolves 0.24 µs today, finer than
    the microseconds PostgreSQL keeps, and costs far less than formatting ISO-8601."""
    return ns / 1e9


def _number(value: Any) -> float | None:
    if type(value) is int or type(value) is float:
        return float(value) if math.isfinite(value) else None
    if type(value) is str:
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _first(attributes: dict[str, Any], keys: tuple[str, ...], parse: Any) -> tuple[Any, str]:
    """The first of ``keys`` whose value ``parse`` accepts (not None), and that key."""
    for key in keys:
        value = parse(attributes.get(key))
        if value is not None:
            return value, key
    return None, ""


def _text_value(value: Any) -> str | None:
    return value if type(value) is str and value else None


def _status(value: Any) -> int | None:
    code = _number(value)
    return int(code) if code is not None and code.is_integer() and 100 <= code <= 599 else None


def _endpoint(attributes: dict[str, Any]) -> tuple[dict[str, Any], list[str]] | None:
    """``attributes.endpoint`` from HTTP semantic conventions, with the keys it used."""
    if "http.route" not in attributes:  # the common case, answered cheaply: not an HTTP log
        return None
    method, method_key = _first(attributes, _METHOD_KEYS, _text_value)
    route, route_key = _first(attributes, ("http.route",), _text_value)
    status, status_key = _first(attributes, _STATUS_KEYS, _status)
    duration: float | None = None
    duration_key = ""
    for key, factor in _DURATION_KEYS:
        value = _number(attributes.get(key))
        if value is not None and value >= 0:
            duration, duration_key = value * factor, key
            break
    if method is None or route is None or status is None or duration is None:
        return None
    return ({"method": method, "path": route, "status_code": status, "duration_ms": duration},
            [method_key, route_key, status_key, duration_key])


def _cut(name: str, value: str | None, truncated: list[str]) -> str | None:
    """``value`` cut to its §3 limit; the field's name is added to ``truncated`` if it was."""
    limit = TEXT_LIMITS[name]
    if value is None or len(value) <= limit:
        return value
    truncated.append(name)
    return value[: limit - 1] + "…"


@dataclass(slots=True)
class _ResourceContext:
    fields: dict[str, Any]
    otel: dict[str, Any]
    service_name: Any


def _resource_context(resource: OtlpResource) -> _ResourceContext:
    attributes = resource.attributes
    fields: dict[str, Any] = {}
    consumed = {"service.name"}  # copied into every record's attributes
    for name, keys in (("release", ("service.version",)),
                       ("environment", ("deployment.environment.name",
                                        "deployment.environment")),
                       ("platform", ("telemetry.sdk.language",)),
                       ("sdk_version", ("telemetry.sdk.version",))):
        for key in keys:
            value = _fits(attributes.get(key), TEXT_LIMITS[name])
            if value is not None:
                fields[name] = value
                consumed.add(key)
                break
    # What became a field is not repeated on every record; everything else is kept.
    rest = {k: v for k, v in attributes.items() if k not in consumed}
    otel: dict[str, Any] = {"resource": rest} if rest else {}
    return _ResourceContext(fields, otel, attributes.get("service.name"))


def _scope_otel(scope: OtlpScope) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    if scope.name:
        out["name"] = scope.name
    if scope.version:
        out["version"] = scope.version
    if scope.attributes:
        out["attributes"] = scope.attributes
    return out or None


def _log_id(record: dict[str, Any], index: int, ns: int) -> str:
    # The record is built in a fixed key order from the request, so its JSON is stable.
    digest = bytearray(hashlib.blake2b(orjson.dumps(record) + index.to_bytes(4, "big"),
                                       digest_size=16).digest())
    digest[0:6] = ((ns // 1_000_000) & 0xFFFF_FFFF_FFFF).to_bytes(6, "big")  # time first
    digest[6] = 0x80 | (digest[6] & 0x0F)  # version 8: the rest is a hash
    digest[8] = 0x80 | (digest[8] & 0x3F)  # RFC 9562 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _is_hex(value: str, size: int) -> bool:
    if len(value) != size:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


def _map_record(record: OtlpRecord, resource: _ResourceContext, scope: dict[str, Any] | None,
                index: int, received_ns: int) -> dict[str, Any]:
    attributes = dict(record.attributes)
    truncated: list[str] = []
    out: dict[str, Any] = dict(resource.fields)
    otel: dict[str, Any] = dict(resource.otel)
    if scope is not None:
        otel["scope"] = scope

    ns = record.time_unix_nano or record.observed_time_unix_nano or received_ns
    out["timestamp"] = _timestamp(ns)

    error_type = attributes.get("exception.type")
    exception = error_type is not None and render_value(error_type) != ""
    out["level"] = level_of(record.severity_number, record.severity_text, exception=exception)
    message = render_value(record.body)
    if exception:
        out["log_type"] = "exception"
        out["error_type"] = _cut("error_type", render_value(error_type), truncated)
        out["error_message"] = _cut(
            "error_message", render_value(attributes.get("exception.message")) or "", truncated)
        trace = render_value(attributes.get("exception.stacktrace"))
        if trace:
            out["stack_trace"] = _cut("stack_trace", trace, truncated)
        for key in _EXCEPTION_KEYS:
            attributes.pop(key, None)
        if message is None:
            message = f"{out['error_type']}: {out['error_message']}".rstrip(": ")
    endpoint = _endpoint(attributes)
    if endpoint is not None:
        if not exception:
            out["log_type"] = "endpoint"
        for key in endpoint[1]:
            attributes.pop(key)
    if message is not None:
        out["message"] = _cut("message", message, truncated)

    if record.trace_id:
        if _is_hex(record.trace_id, 32):
            out["trace_id"] = record.trace_id
        else:
            otel["trace_id"] = record.trace_id
    if record.span_id:
        if _is_hex(record.span_id, 16):
            out["span_id"] = record.span_id
        else:
            otel["span_id"] = record.span_id

    # The severity is kept when the level does not already say it (TRACE vs DEBUG, INFO3,
    # "NOTICE"...): the usual INFO/9 of every record would double the size of its attributes.
    if record.severity_text and record.severity_text.upper() not in _PLAIN_TEXTS[out["level"]]:
        otel["severity_text"] = record.severity_text
    if record.severity_number and record.severity_number not in _PLAIN_NUMBERS:
        otel["severity_number"] = record.severity_number
    if record.event_name:
        otel["event_name"] = record.event_name
    if record.flags:
        otel["flags"] = record.flags
    if record.dropped_attributes_count:
        otel["dropped_attributes_count"] = record.dropped_attributes_count
    if not record.time_unix_nano:
        otel["time"] = "observed" if record.observed_time_unix_nano else "received"
    if truncated:
        otel["truncated"] = truncated
        if "message" in truncated and type(record.body) is not str:
            otel["body"] = record.body  # the structured body, whole, beside its cut rendering
    if "otel" in attributes or "endpoint" in attributes:
        for key in _RESERVED & attributes.keys():
            otel.setdefault("attributes", {})[key] = attributes.pop(key)
    if resource.service_name is not None:
        attributes.setdefault("service.name", resource.service_name)
    if endpoint is not None:
        attributes["endpoint"] = endpoint[0]
    if otel:
        attributes["otel"] = otel
    if attributes:
        out["attributes"] = attributes
    out["log_id"] = _log_id(out, index, ns)
    return out


def to_records(resources: list[OtlpResource], *, received_ns: int) -> list[dict[str, Any]]:
    """Native log records (DESIGN §3, JSON-ready) for every OTLP record, in request order.

    Args:
        resources: the decoded request.
        received_ns: when the request arrived (ns since the epoch), for records with no time.
    """
    return list(_iter_records(resources, received_ns))


def _iter_records(resources: list[OtlpResource], received_ns: int,
                  ) -> Iterator[dict[str, Any]]:
    index = 0
    for resource in resources:
        context = _resource_context(resource)
        for scope in resource.scopes:
            scope_otel = _scope_otel(scope)
            for record in scope.records:
                yield _map_record(record, context, scope_otel, index, received_ns)
                index += 1


def bytes_value(raw: bytes) -> str:
    """A protobuf ``bytes_value`` as OTLP/JSON writes it (base64), for the neutral form."""
    return base64.b64encode(raw).decode()
