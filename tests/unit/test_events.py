"""Log records: validation, cleaning, enrichment and COPY rows (DESIGN §2.6, §2.7, §3, §10)."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from ledger.core import events
from ledger.core.events import (
    CONSTRAINTS,
    IMPORTANCES,
    LEVELS,
    LOG_COLUMNS,
    LOG_TYPES,
    TEXT_LIMITS,
    InvalidBody,
    InvalidLog,
    ItemError,
    enrich,
    is_error_event,
    parse_json_body,
    to_row,
    uuid7,
    validate_batch,
    validate_log,
)
from ledger.core.fingerprints import FINGERPRINT_VERSION
from ledger.errors import InvalidInputError

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
RETENTION = 30

CLEAN_KEYS = {
    "timestamp",
    "level",
    "log_type",
    "importance",
    "message",
    "error_type",
    "error_message",
    "stack_trace",
    "exceptions",
    "environment",
    "release",
    "sdk_version",
    "platform",
    "platform_version",
    "attributes",
    "trace_id",
    "span_id",
    "client_fingerprint",
    "log_id",
}

PY_TRACE = """\
Traceback (most recent call last):
  File "/srv/app/app/services/billing.py", line 42, in charge
    price = PRICES[sku]
KeyError: 'sku-1'
"""


def log(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"timestamp": "2024-05-01T11:59:00Z", "level": "info", "message": "hi"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def valid(obj: Any) -> dict[str, Any]:
    return validate_log(obj, now=NOW, retention_days=RETENTION)


def invalid(obj: Any) -> InvalidLog:
    with pytest.raises(InvalidLog) as info:
        validate_log(obj, now=NOW, retention_days=RETENTION)
    return info.value


# --------------------------------------------------------------------------------------------
# Shape
# --------------------------------------------------------------------------------------------


def test_minimal_log_gets_defaults() -> None:
    clean = valid({"timestamp": "2024-05-01T11:59:00Z", "level": "info"})
    assert set(clean) == CLEAN_KEYS
    assert clean["timestamp"] == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    assert clean["level"] == "info"
    assert clean["log_type"] == "logger"
    assert clean["importance"] == "standard"
    assert clean["attributes"] == {}
    assert clean["message"] is None
    assert clean["log_id"] is None
    assert clean["client_fingerprint"] is None


def test_unknown_fields_are_ignored() -> None:
    clean = valid(log(brand_new_field={"x": 1}, another=[1, 2], id="forged", project_id="p"))
    assert set(clean) == CLEAN_KEYS
    assert clean["message"] == "hi"


def test_nulls_mean_not_given() -> None:
    clean = valid(log(log_type=None, importance=None, message=None, attributes=None, trace_id=None))
    assert clean["log_type"] == "logger"
    assert clean["importance"] == "standard"
    assert clean["attributes"] == {}
    assert clean["message"] is None


def test_every_field_is_kept() -> None:
    obj = log(
        level="error",
        log_type="exception",
        importance="high",
        message="charge failed",
        error_type="KeyError",
        error_message="'sku-1'",
        stack_trace=PY_TRACE,
        environment="production",
        release="2024.05.01+build.7",
        sdk_version="0.3.0",
        platform="python",
        platform_version="3.11.7",
        attributes={"user_id": 42, "cart": {"items": [1, 2]}},
        log_id="0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
        fingerprint=["billing", "{{ default }}"],
    )
    clean = valid(obj)
    for key in ("level", "log_type", "importance", "message", "error_type", "error_message"):
        assert clean[key] == obj[key]
    for key in ("stack_trace", "environment", "release", "sdk_version", "platform"):
        assert clean[key] == obj[key]
    assert clean["platform_version"] == "3.11.7"
    assert clean["attributes"] == obj["attributes"]
    assert clean["log_id"] == obj["log_id"]
    assert clean["trace_id"] == obj["trace_id"]
    assert clean["span_id"] == obj["span_id"]
    assert clean["client_fingerprint"] == ["billing", "{{ default }}"]


@pytest.mark.parametrize("obj", [None, [], "log", 5, True, [{"level": "info"}]])
def test_a_log_must_be_an_object(obj: Any) -> None:
    assert invalid(obj).field == "log"


def test_invalid_log_is_a_400_with_field_and_reason() -> None:
    error = invalid(log(level="loud"))
    assert isinstance(error, InvalidInputError)
    assert error.http_status == 400
    assert error.field == "level"
    assert error.reason == "level must be one of debug, info, warning, error, critical"
    assert str(error) == error.reason


# --------------------------------------------------------------------------------------------
# timestamp
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T11:59:00Z", datetime(2024, 5, 1, 11, 59, tzinfo=UTC)),
        ("2024-05-01T11:59:00.123456Z", datetime(2024, 5, 1, 11, 59, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T11:59:00.123456789Z", datetime(2024, 5, 1, 11, 59, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T13:59:00+02:00", datetime(2024, 5, 1, 11, 59, tzinfo=UTC)),
        ("2024-05-01T06:29:00-05:30", datetime(2024, 5, 1, 11, 59, tzinfo=UTC)),
        ("2024-05-01 11:59:00", datetime(2024, 5, 1, 11, 59, tzinfo=UTC)),  # naive = UTC
        (1714564740, datetime(2024, 5, 1, 11, 59, tzinfo=UTC)),  # epoch seconds
        (1714564740.5, datetime(2024, 5, 1, 11, 59, 0, 500000, tzinfo=UTC)),
        (1714564740123, datetime(2024, 5, 1, 11, 59, 0, 123000, tzinfo=UTC)),  # epoch millis
        (
            datetime(2024, 5, 1, 13, 59, tzinfo=timezone(timedelta(hours=2))),
            datetime(2024, 5, 1, 11, 59, tzinfo=UTC),
        ),
    ],
)
def test_timestamp_forms(value: Any, expected: datetime) -> None:
    ts = valid(log(timestamp=value))["timestamp"]
    assert ts == expected
    assert ts.utcoffset() == timedelta(0)


def test_timestamp_limits() -> None:
    assert valid(log(timestamp="2024-05-01T12:05:00Z"))["timestamp"] == NOW + timedelta(minutes=5)
    assert invalid(log(timestamp="2024-05-01T12:05:01Z")).reason == (
        "timestamp is more than 5 minutes in the future"
    )
    oldest = NOW - timedelta(days=RETENTION)
    assert valid(log(timestamp=oldest.isoformat()))["timestamp"] == oldest
    error = invalid(log(timestamp=(oldest - timedelta(seconds=1)).isoformat()))
    assert error.field == "timestamp"
    assert "retention (30 days)" in error.reason


@pytest.mark.parametrize(
    "value",
    [
        ...,
        None,
        "",
        "yesterday",
        "2024-13-01T00:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T11:59:00Z" + " " * 100,
        "2024-05-01\x00T11:59:00Z",
        True,
        [],
        {},
        float("nan"),
        float("inf"),
        10**400,
        1e300,
        -1e300,
    ],
)
def test_bad_timestamps(value: Any) -> None:
    assert invalid(log(timestamp=value)).field == "timestamp"


def test_naive_now_is_utc() -> None:
    naive_now = NOW.replace(tzinfo=None)
    clean = validate_log(log(), now=naive_now, retention_days=RETENTION)
    assert clean["timestamp"] == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# level, log_type, importance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_levels(level: str) -> None:
    assert valid(log(level=level))["level"] == level
    assert valid(log(level=level.upper()))["level"] == level
    assert valid(log(level=level.title()))["level"] == level


@pytest.mark.parametrize("value", [..., None, "", "warn", "fatal", "trace", 5, 3.0, True, ["info"]])
def test_bad_levels(value: Any) -> None:
    error = invalid(log(level=value))
    assert error.field == "level"
    assert "debug, info, warning, error, critical" in error.reason


@pytest.mark.parametrize("log_type", LOG_TYPES)
def test_log_types(log_type: str) -> None:
    obj = log(
        log_type=log_type.upper(),
        error_type="E",
        error_message="m",
        attributes={
            "endpoint": {"method": "GET", "path": "/", "status_code": 200, "duration_ms": 1}
        },
    )
    assert valid(obj)["log_type"] == log_type


@pytest.mark.parametrize("value", ["metric", "", 1, {}, False])
def test_bad_log_types(value: Any) -> None:
    assert invalid(log(log_type=value)).field == "log_type"


@pytest.mark.parametrize("importance", IMPORTANCES)
def test_importances(importance: str) -> None:
    assert valid(log(importance=importance.upper()))["importance"] == importance


@pytest.mark.parametrize("value", ["urgent", 1, [], True])
def test_bad_importances(value: Any) -> None:
    assert invalid(log(importance=value)).field == "importance"


# --------------------------------------------------------------------------------------------
# Text fields
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "limit"), sorted(TEXT_LIMITS.items()))
def test_text_limits(field: str, limit: int) -> None:
    assert valid(log(**{field: "é" * limit}))[field] == "é" * limit
    error = invalid(log(**{field: "x" * (limit + 1)}))
    assert error.field == field
    assert error.reason == f"{field} must be at most {limit} characters, got {limit + 1}"


def test_documented_limits() -> None:
    assert TEXT_LIMITS == {
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
    orjson.dumps(CONSTRAINTS)  # served as JSON by GET /settings


@pytest.mark.parametrize("field", sorted(TEXT_LIMITS))
@pytest.mark.parametrize("value", [5, 1.5, True, {}, [], ["a"], b"bytes"])
def test_text_fields_must_be_strings(field: str, value: Any) -> None:
    error = invalid(log(**{field: value}))
    assert error.field == field
    assert error.reason == f"{field} must be a string"


def test_nul_bytes_are_removed_before_the_length_check() -> None:
    clean = valid(log(message="a\x00b\x00", environment="prod\x00" * 4 + "x" * 4))
    assert clean["message"] == "ab"
    assert clean["environment"] == "prodprodprodprodxxxx"


def test_lone_surrogates_are_replaced() -> None:
    clean = valid(log(message="bad \ud800 half", error_type="E\udfff"))
    assert clean["message"] == "bad \ufffd half"
    assert clean["error_type"] == "E\ufffd"
    clean["message"].encode("utf-8")  # PostgreSQL will take it
    # A surrogate pair smuggled in as two code points becomes the real character.
    assert valid(log(message="\ud83d\ude00"))["message"] == "\U0001f600"


def test_exception_logs_need_error_type_and_error_message() -> None:
    assert invalid(log(log_type="exception", error_message="m")).field == "error_type"
    assert invalid(log(log_type="exception", error_type="", error_message="m")).field == (
        "error_type"
    )
    assert invalid(log(log_type="exception", error_type="KeyError")).field == "error_message"
    # `raise KeyError()` has an empty message: still an exception worth keeping.
    clean = valid(log(log_type="exception", error_type="KeyError", error_message=""))
    assert clean["error_message"] == ""
    # Other log types do not need them.
    assert valid(log(level="error"))["error_type"] is None


# --------------------------------------------------------------------------------------------
# attributes
# --------------------------------------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep, the outermost one included."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"child": value}
    return value


def test_attributes_depth() -> None:
    assert valid(log(attributes=nested(16)))["attributes"] == nested(16)
    error = invalid(log(attributes=nested(17)))
    assert error.field == "attributes"
    assert "16" in error.reason
    lists: Any = [1]  # 15 arrays inside the attributes object: 16 levels
    for _ in range(14):
        lists = [lists]
    assert valid(log(attributes={"l": lists}))["attributes"] == {"l": lists}
    assert invalid(log(attributes={"l": [lists]})).field == "attributes"


def test_very_deep_attributes_are_refused_not_crashed() -> None:
    deep: Any = "x"
    for _ in range(10_000):
        deep = {"a": deep}
    assert invalid(log(attributes=deep)).field == "attributes"
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    assert invalid(log(attributes=cyclic)).field == "attributes"


def test_attributes_size() -> None:
    overhead = len(orjson.dumps({"blob": ""}))
    fits = {"blob": "x" * (events.MAX_ATTRIBUTES_BYTES - overhead)}
    assert valid(log(attributes=fits))["attributes"] == fits
    error = invalid(log(attributes={"blob": "x" * (events.MAX_ATTRIBUTES_BYTES - overhead + 1)}))
    assert error.field == "attributes"
    assert "100000 bytes" in error.reason
    # Size is bytes of JSON, not characters: 40 000 three-byte characters are 120 000 bytes.
    assert invalid(log(attributes={"text": "€" * 40_000})).field == "attributes"
    many_keys = {f"key{i}": i for i in range(20_000)}
    assert invalid(log(attributes=many_keys)).field == "attributes"


@pytest.mark.parametrize("value", [[], "a=b", 5, True, [{"a": 1}]])
def test_attributes_must_be_an_object(value: Any) -> None:
    error = invalid(log(attributes=value))
    assert error.field == "attributes"
    assert error.reason == "attributes must be a JSON object"


def test_attributes_are_cleaned_recursively() -> None:
    attributes = {
        "ke\x00y": "va\x00lue",
        "bad\ud800key": ["x\udc00", {"deep\x00": ["\x00"]}],
        "n": 1,
        "f": 1.5,
        "b": False,
        "none": None,
    }
    clean = valid(log(attributes=attributes))["attributes"]
    assert clean == {
        "key": "value",
        "bad\ufffdkey": ["x\ufffd", {"deep": [""]}],
        "n": 1,
        "f": 1.5,
        "b": False,
        "none": None,
    }
    orjson.dumps(clean)
    assert "ke\x00y" in attributes  # the caller's object is not modified


def test_attributes_that_are_not_json_are_refused() -> None:
    assert invalid(log(attributes={"big": 2**70})).field == "attributes"
    assert invalid(log(attributes={1: "non-string key"})).field == "attributes"
    assert invalid(log(attributes={"when": datetime.now(UTC)})).field == "attributes"
    assert invalid(log(attributes={"set": {1, 2}})).field == "attributes"
    # Tuples from Python callers are JSON arrays.
    assert valid(log(attributes={"t": (1, 2)}))["attributes"] == {"t": [1, 2]}


ENDPOINT = {"method": "POST", "path": "/api/orders", "status_code": 201, "duration_ms": 12.5}


def endpoint_log(**endpoint: Any) -> dict[str, Any]:
    values = {**ENDPOINT, **endpoint}
    return log(
        log_type="endpoint",
        attributes={"endpoint": {k: v for k, v in values.items() if v is not ...}, "x": 1},
    )


def test_endpoint_logs() -> None:
    assert valid(endpoint_log())["attributes"]["endpoint"] == ENDPOINT
    assert valid(endpoint_log(duration_ms=0, status_code=599))
    assert valid(endpoint_log(status_code=100, duration_ms=3))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"method": ...}, "attributes.endpoint.method"),
        ({"method": 5}, "attributes.endpoint.method"),
        ({"method": ""}, "attributes.endpoint.method"),
        ({"path": ...}, "attributes.endpoint.path"),
        ({"path": ["/"]}, "attributes.endpoint.path"),
        ({"status_code": ...}, "attributes.endpoint.status_code"),
        ({"status_code": "200"}, "attributes.endpoint.status_code"),
        ({"status_code": 200.0}, "attributes.endpoint.status_code"),
        ({"status_code": True}, "attributes.endpoint.status_code"),
        ({"status_code": 99}, "attributes.endpoint.status_code"),
        ({"status_code": 600}, "attributes.endpoint.status_code"),
        ({"duration_ms": ...}, "attributes.endpoint.duration_ms"),
        ({"duration_ms": -0.1}, "attributes.endpoint.duration_ms"),
        ({"duration_ms": "5"}, "attributes.endpoint.duration_ms"),
        ({"duration_ms": True}, "attributes.endpoint.duration_ms"),
        ({"duration_ms": float("inf")}, "attributes.endpoint.duration_ms"),
        ({"duration_ms": float("nan")}, "attributes.endpoint.duration_ms"),
    ],
)
def test_bad_endpoint_logs(change: dict[str, Any], field: str) -> None:
    assert invalid(endpoint_log(**change)).field == field


@pytest.mark.parametrize("attributes", [..., {}, {"endpoint": "GET /"}, {"endpoint": None}])
def test_endpoint_logs_need_the_endpoint_object(attributes: Any) -> None:
    error = invalid(log(log_type="endpoint", attributes=attributes))
    assert error.field == "attributes.endpoint"
    assert "method, path, status_code and duration_ms" in error.reason


# --------------------------------------------------------------------------------------------
# Ids and fingerprint
# --------------------------------------------------------------------------------------------


def test_log_id_is_kept_in_canonical_form() -> None:
    lower = "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d"
    assert valid(log(log_id=lower))["log_id"] == lower
    assert valid(log(log_id=lower.upper()))["log_id"] == lower
    assert valid(log(log_id=lower.replace("-", "")))["log_id"] == lower
    assert valid(log(log_id=f"{{{lower}}}"))["log_id"] == lower
    assert valid(log(log_id=uuid.UUID(lower)))["log_id"] == lower


@pytest.mark.parametrize(
    "value", ["", "not-a-uuid", "0190a3c4-5e6f-7a8b-9c0d", "x" * 1000, 5, True, [], {}]
)
def test_bad_log_ids(value: Any) -> None:
    error = invalid(log(log_id=value))
    assert error.field == "log_id"
    assert error.reason == "log_id must be a UUID"


def test_trace_and_span_ids() -> None:
    clean = valid(log(trace_id="4BF92F3577B34DA6A3CE929D0E0E4736", span_id="00F067AA0BA902B7"))
    assert clean["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert clean["span_id"] == "00f067aa0ba902b7"
    # OpenTelemetry's "no trace": empty or all zeros.
    clean = valid(log(trace_id="", span_id="0" * 16))
    assert clean["trace_id"] is None
    assert clean["span_id"] is None
    assert valid(log(trace_id="0" * 32))["trace_id"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trace_id", "4bf92f3577b34da6a3ce929d0e0e473"),
        ("trace_id", "4bf92f3577b34da6a3ce929d0e0e47366"),
        ("trace_id", "zbf92f3577b34da6a3ce929d0e0e4736"),
        ("trace_id", "4bf92f35-77b3-4da6-a3ce-929d0e0e"),
        ("trace_id", 12345),
        ("trace_id", ["4bf92f3577b34da6a3ce929d0e0e4736"]),
        ("span_id", "00f067aa0ba902b"),
        ("span_id", "00f067aa0ba902b7a"),
        ("span_id", "00f067aa0ba902g7"),
        ("span_id", 7),
    ],
)
def test_bad_trace_and_span_ids(field: str, value: Any) -> None:
    error = invalid(log(**{field: value}))
    assert error.field == field
    assert "hexadecimal" in error.reason


def test_client_fingerprint() -> None:
    assert valid(log(fingerprint=["a"]))["client_fingerprint"] == ["a"]
    most = [str(i) for i in range(events.MAX_FINGERPRINT_ITEMS)]
    assert valid(log(fingerprint=most))["client_fingerprint"] == most
    assert valid(log(fingerprint=["x" * 255]))["client_fingerprint"] == ["x" * 255]
    assert valid(log(fingerprint=["a\x00b"]))["client_fingerprint"] == ["ab"]


@pytest.mark.parametrize(
    "value",
    [[], [str(i) for i in range(33)], ["x" * 256], [1], ["a", None], "a", {"a": 1}, True],
)
def test_bad_client_fingerprints(value: Any) -> None:
    assert invalid(log(fingerprint=value)).field == "fingerprint"


WEIRD_VALUES = [5, -1, 1.5, True, False, "", "x", [], [1, "a"], {}, {"a": {}}, "\x00", "\ud800"]
FIELDS = sorted(CLEAN_KEYS - {"client_fingerprint"} | {"fingerprint"})


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", WEIRD_VALUES, ids=repr)
def test_wrong_types_are_invalid_logs_never_crashes(field: str, value: Any) -> None:
    try:
        valid(log(**{field: value}))
    except InvalidLog as error:
        assert error.field.split(".")[0].split("[")[0] in {field, "error_type", "error_message"}
        assert error.reason


# --------------------------------------------------------------------------------------------
# Body parsing
# --------------------------------------------------------------------------------------------


def test_parse_json_body() -> None:
    assert parse_json_body(b'{"logs": [{"level": "info"}]}') == {"logs": [{"level": "info"}]}
    assert parse_json_body(bytearray(b"[1]")) == [1]
    assert parse_json_body(memoryview(b"[1]")) == [1]
    assert parse_json_body('{"a": 1}') == {"a": 1}
    assert parse_json_body(b'\xef\xbb\xbf{"bom": true}') == {"bom": True}
    assert parse_json_body(b'{"nul": "a\\u0000b"}') == {"nul": "a\x00b"}


def test_invalid_utf8_is_repaired() -> None:
    body = b'{"message": "caf\xe9 \xff\xfe ok", "level": "info"}'
    assert parse_json_body(body) == {"message": "caf\ufffd \ufffd\ufffd ok", "level": "info"}


def test_lone_surrogate_escapes_are_repaired() -> None:
    body = b'{"timestamp": "2024-05-01T11:59:00Z", "level": "info", "message": "x\\ud800y"}'
    parsed = parse_json_body(body)
    # Replaced while parsing (one parser for every body), before the validators see it.
    assert parsed["message"] == "x\ufffdy"
    assert valid(parsed)["message"] == "x\ufffdy"


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"a": }', b"[1, 2", b"nope", b"{'a': 1}", b'{"a": NaN}', b"\xff\xfe"],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(InvalidBody) as info:
        parse_json_body(body)
    assert info.value.field == "body"
    assert isinstance(info.value, InvalidLog)
    assert info.value.http_status == 400


def test_too_deep_bodies() -> None:
    with pytest.raises(InvalidBody, match="too deeply"):
        parse_json_body(b"[" * 10_000 + b"]" * 10_000)
    with pytest.raises(InvalidBody):
        parse_json_body(b'{"x": "\\ud800", "d": ' + b"[" * 10_000 + b"]" * 10_000 + b"}")


def test_nan_from_the_fallback_parser_is_refused() -> None:
    with pytest.raises(InvalidBody):
        parse_json_body(b'{"x": "\\ud800", "n": NaN}')


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


def batch(items: Any, max_items: int = 1000) -> tuple[list[dict[str, Any]], list[ItemError]]:
    return validate_batch(items, now=NOW, retention_days=RETENTION, max_items=max_items)


@pytest.mark.parametrize("items", [[], [log()] * 1001, None, {"logs": []}, "logs", 5])
def test_batch_size_and_type(items: Any) -> None:
    with pytest.raises(InvalidLog) as info:
        batch(items)
    assert info.value.field == "logs"


def test_batch_limits() -> None:
    valid_items, errors = batch([log()] * 1000)
    assert len(valid_items) == 1000 and errors == []
    assert len(batch([log()])[0]) == 1
    with pytest.raises(InvalidLog, match="at most 2"):
        batch([log()] * 3, max_items=2)


def test_mixed_batch_reports_each_invalid_item_with_its_index() -> None:
    items = [
        log(message="first"),
        log(level="loud"),
        "not an object",
        log(message="fourth"),
        log(timestamp="2030-01-01T00:00:00Z"),
        log(message={"nested": "object"}),
        log(message="seventh", unknown_field=True),
    ]
    valid_items, errors = batch(items)
    assert [item["message"] for item in valid_items] == ["first", "fourth", "seventh"]
    assert [e.to_dict() for e in errors] == [
        {
            "index": 1,
            "field": "level",
            "reason": "level must be one of debug, info, warning, error, critical",
        },
        {"index": 2, "field": "log", "reason": "a log must be a JSON object"},
        {
            "index": 4,
            "field": "timestamp",
            "reason": "timestamp is more than 5 minutes in the future",
        },
        {"index": 5, "field": "message", "reason": "message must be a string"},
    ]


def test_all_invalid_batch_returns_only_errors() -> None:
    valid_items, errors = batch([{"level": "info"}, {"timestamp": "2024-05-01T11:59:00Z"}])
    assert valid_items == []
    assert [(e.index, e.field) for e in errors] == [(0, "timestamp"), (1, "level")]


# --------------------------------------------------------------------------------------------
# Enrichment and rows
# --------------------------------------------------------------------------------------------

INGESTED = datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)


def enriched(**fields: Any) -> dict[str, Any]:
    return enrich(valid(log(**fields)), project_id="proj-1", now=INGESTED)


def test_enrich_adds_the_stored_fields() -> None:
    record = enriched()
    assert list(record)[: len(LOG_COLUMNS)] == list(LOG_COLUMNS)
    assert set(record) == set(LOG_COLUMNS) | {"fingerprint_components"}
    assert record["project_id"] == "proj-1"
    assert record["ingested_at"] == INGESTED
    parsed = uuid.UUID(record["id"])
    assert str(parsed) == record["id"]
    assert parsed.version == 7
    assert record["error_fingerprint"] is None
    assert record["fingerprint_version"] is None
    assert record["fingerprint_components"] is None
    assert record["attributes"] == {}


def test_client_log_id_becomes_the_id() -> None:
    log_id = "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d"
    assert enriched(log_id=log_id.upper())["id"] == log_id
    # The same client id twice is the same row id: the retry is de-duplicated downstream.
    assert enriched(log_id=log_id)["id"] == enriched(log_id=log_id)["id"]
    assert enriched()["id"] != enriched()["id"]


@pytest.mark.parametrize(
    ("fields", "is_error"),
    [
        ({"level": "debug"}, False),
        ({"level": "info"}, False),
        ({"level": "warning"}, False),
        ({"level": "error"}, True),
        ({"level": "critical"}, True),
        ({"level": "info", "log_type": "exception", "error_type": "E", "error_message": ""}, True),
    ],
)
def test_only_error_events_get_a_fingerprint(fields: dict[str, Any], is_error: bool) -> None:
    record = enriched(**fields)
    assert is_error_event(record) is is_error
    assert (record["error_fingerprint"] is not None) is is_error
    assert (record["fingerprint_version"] == FINGERPRINT_VERSION) is is_error
    assert (record["fingerprint_components"] is not None) is is_error


def test_error_fingerprint_groups_and_explains() -> None:
    a = enriched(level="error", error_type="KeyError", error_message="'a'", stack_trace=PY_TRACE)
    b = enriched(
        level="error",
        error_type="KeyError",
        error_message="'b'",
        stack_trace=PY_TRACE.replace("/srv/app", "/opt/new").replace("line 42", "line 50"),
    )
    assert a["error_fingerprint"] == b["error_fingerprint"]
    assert a["fingerprint_components"] == {
        "method": "stacktrace",
        "error_type": "KeyError",
        "exceptions": [{"type": "KeyError", "frames": ["services/billing:charge"],
                        "in_app": True}],
    }
    c = enriched(level="error", message="disk 93% full", fingerprint=["disk"])
    assert c["fingerprint_components"] == {"method": "client", "client": ["disk"]}


def test_to_row() -> None:
    record = enriched(
        level="error",
        message="boom",
        attributes={"user": "é", "n": 1},
        fingerprint=["x"],
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )
    row = to_row(record)
    assert len(row) == len(LOG_COLUMNS)
    values = dict(zip(LOG_COLUMNS, row, strict=True))
    assert values["project_id"] == "proj-1"
    assert values["id"] == uuid.UUID(record["id"])
    assert values["timestamp"] == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    assert values["ingested_at"] == INGESTED
    assert json.loads(values["attributes"]) == {"user": "é", "n": 1}
    assert values["client_fingerprint"] == ["x"]
    assert values["error_fingerprint"] == record["error_fingerprint"]
    assert values["fingerprint_version"] == FINGERPRINT_VERSION
    assert values["level"] == "error"
    assert values["message"] == "boom"
    assert values["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_to_row_after_a_json_round_trip() -> None:
    record = enriched(level="error", message="boom", attributes={"a": [1, 2]})
    # What a writer reads back from the Redis stream.
    round_tripped = orjson.loads(orjson.dumps(record))
    assert to_row(round_tripped) == to_row(record)
    assert to_row({**round_tripped, "attributes": None})[LOG_COLUMNS.index("attributes")] == "{}"


# --------------------------------------------------------------------------------------------
# UUIDv7
# --------------------------------------------------------------------------------------------


def test_uuid7_layout() -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    value = uuid7()
    after = int(datetime.now(UTC).timestamp() * 1000)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before - 1 <= value.int >> 80 <= after + 1


def test_uuid7_is_strictly_increasing() -> None:
    ids = [uuid7() for _ in range(20_000)]
    assert all(a < b for a, b in itertools.pairwise(ids))
    as_text = [enrich(valid(log()), project_id="p", now=NOW)["id"] for _ in range(2_000)]
    assert as_text == sorted(as_text) and len(set(as_text)) == len(as_text)


def keep_uuid7_state(monkeypatch: pytest.MonkeyPatch) -> None:
    # These tests move the generator's clock decades ahead; put it back afterwards.
    monkeypatch.setattr(events, "_uuid7_last_ms", events._uuid7_last_ms)
    monkeypatch.setattr(events, "_uuid7_counter", events._uuid7_counter)


def test_uuid7_stays_monotonic_when_the_clock_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    keep_uuid7_state(monkeypatch)
    clock = iter([2_000_000_000_000_000_000, 1_999_999_000_000_000_000, 1_000_000_000])
    monkeypatch.setattr(events.time, "time_ns", lambda: next(clock))
    a, b, c = uuid7(), uuid7(), uuid7()
    assert a < b < c
    assert a.int >> 80 == b.int >> 80 == c.int >> 80 == 2_000_000_000_000


def test_uuid7_counter_overflow_moves_to_the_next_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keep_uuid7_state(monkeypatch)
    monkeypatch.setattr(events.time, "time_ns", lambda: 3_000_000_000_000_000_000)
    first = uuid7()
    events._uuid7_counter = events._COUNTER_MAX
    second = uuid7()
    assert second > first
    assert second.int >> 80 == (first.int >> 80) + 1
    assert second.version == 7 and second.variant == uuid.RFC_4122


# -- one parser, one rule for numbers ---------------------------------------------------------


@pytest.mark.parametrize("escape", [b"", b', "x": "\\ud800"'])
def test_numbers_follow_one_rule_whatever_else_the_body_holds(escape: bytes) -> None:
    body = b'{"n": 1e30, "big": 18446744073709551616, "ok": 18446744073709551615' + escape + b"}"
    parsed = events.parse_json_body(body)
    assert parsed["n"] == 1e30
    assert parsed["big"] == 2.0**64 and type(parsed["big"]) is float
    assert parsed["ok"] == 2**64 - 1 and type(parsed["ok"]) is int


def test_lone_surrogate_escapes_become_replacement_characters_and_pairs_stay() -> None:
    body = rb'{"a": "\ud800", "b": "\ud83d\ude00", "c": "\\ud800", "d": "x\udc00y\u0041"}'
    parsed = events.parse_json_body(body)
    assert parsed == {"a": "\ufffd", "b": "\U0001f600", "c": "\\ud800", "d": "x\ufffdyA"}
