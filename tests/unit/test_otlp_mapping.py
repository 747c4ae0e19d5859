"""OTLP → native records (ledger.core.otlp) and the protobuf decoding (ledger.rpc.otlp)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from ledger.core import events, otlp
from ledger.rpc.otlp import decode_logs_request, encode_logs_response

NOW_NS = time.time_ns()


def _one(record: otlp.OtlpRecord, resource: dict[str, Any] | None = None,
         scope: otlp.OtlpScope | None = None) -> dict[str, Any]:
    scope = scope or otlp.OtlpScope()
    scope.records = [record]
    [out] = otlp.to_records([otlp.OtlpResource(resource or {}, [scope])], received_ns=NOW_NS)
    return out


def _valid(record: dict[str, Any]) -> dict[str, Any]:
    """The record as §3 validation leaves it (what ingest would store)."""
    return events.validate_log(record, now=datetime.now(UTC), retention_days=36_500)


@pytest.mark.parametrize(("number", "level"), [
    (1, "debug"), (4, "debug"), (5, "debug"), (8, "debug"), (9, "info"), (12, "info"),
    (13, "warning"), (16, "warning"), (17, "error"), (20, "error"), (21, "critical"),
    (24, "critical"), (30, "critical"),
])
def test_severity_number_decides_the_level(number: int, level: str) -> None:
    assert otlp.level_of(number, "ERROR") == level


@pytest.mark.parametrize(("text", "level"), [
    ("TRACE", "debug"), ("debug", "debug"), ("Info", "info"), ("WARN", "warning"),
    ("warning", "warning"), ("ERROR", "error"), ("err", "error"), ("FATAL", "critical"),
    ("critical", "critical"), ("whatever", "info"), ("", "info"),
])
def test_severity_text_is_the_fallback_then_info(text: str, level: str) -> None:
    assert otlp.level_of(0, text) == level


def test_an_exception_without_severity_is_an_error() -> None:
    out = _one(otlp.OtlpRecord(attributes={"exception.type": "ValueError",
                                           "exception.message": "bad", "other": 1}))
    assert out["level"] == "error"
    assert out["log_type"] == "exception"
    assert (out["error_type"], out["error_message"]) == ("ValueError", "bad")
    assert out["message"] == "ValueError: bad"
    assert out["attributes"]["other"] == 1
    assert "exception.type" not in out["attributes"]
    _valid(out)


def test_an_exception_with_a_message_only_stays_a_plain_log_with_its_attributes() -> None:
    out = _one(otlp.OtlpRecord(severity_number=17, body="x",
                               attributes={"exception.message": "boom"}))
    assert "log_type" not in out
    assert out["attributes"]["exception.message"] == "boom"
    assert _valid(out)["log_type"] == "logger"


@pytest.mark.parametrize("attributes", [
    {"http.request.method": "POST", "http.route": "/orders/{id}",
     "http.response.status_code": 201, "http.server.request.duration": 0.25},
    {"http.method": "POST", "http.route": "/orders/{id}", "http.status_code": "201",
     "http.server.duration": 250},
    {"http.method": "POST", "http.route": "/orders/{id}", "http.status_code": 201,
     "duration_ms": 250.0},
])
def test_http_attributes_old_and_new_make_an_endpoint_log(attributes: dict[str, Any]) -> None:
    out = _one(otlp.OtlpRecord(severity_number=9, body="req",
                               attributes={**attributes, "url.path": "/orders/7"}))
    assert out["log_type"] == "endpoint"
    assert out["attributes"]["endpoint"] == {"method": "POST", "path": "/orders/{id}",
                                             "status_code": 201, "duration_ms": 250.0}
    assert out["attributes"]["url.path"] == "/orders/7"
    assert set(out["attributes"]) == {"endpoint", "url.path", "otel"}
    _valid(out)


def test_an_incomplete_http_log_is_a_plain_log_with_every_attribute() -> None:
    attributes = {"http.method": "GET", "http.route": "/x", "http.status_code": 999,
                  "http.server.duration": 3}
    out = _one(otlp.OtlpRecord(severity_number=9, body="req", attributes=dict(attributes)))
    assert "log_type" not in out
    assert {k: out["attributes"][k] for k in attributes} == attributes


def test_resource_fields_map_and_everything_else_is_kept() -> None:
    resource = {"service.name": "shop", "service.version": "1.2.3",
                "deployment.environment.name": "prod", "deployment.environment": "old",
                "telemetry.sdk.language": "python", "telemetry.sdk.version": "1.45.2",
                "k8s.pod.name": "shop-7"}
    scope = otlp.OtlpScope(name="lib", version="2", attributes={"a": 1})
    out = _one(otlp.OtlpRecord(severity_number=10, body="hi", severity_text="NOTICE",
                               event_name="cart.added", flags=1, dropped_attributes_count=2,
                               attributes={"service.name": "mine", "otel": "clash"}),
               resource, scope)
    assert (out["release"], out["environment"], out["platform"], out["sdk_version"]) == (
        "1.2.3", "prod", "python", "1.45.2")
    attrs = out["attributes"]
    assert attrs["service.name"] == "mine"  # the record's own attribute wins over the resource
    assert attrs["otel"]["resource"] == {"deployment.environment": "old",
                                         "k8s.pod.name": "shop-7"}  # the rest became fields
    assert attrs["otel"]["scope"] == {"name": "lib", "version": "2", "attributes": {"a": 1}}
    assert attrs["otel"]["attributes"] == {"otel": "clash"}  # a reserved name, moved not lost
    assert (attrs["otel"]["severity_text"], attrs["otel"]["event_name"], attrs["otel"]["flags"],
            attrs["otel"]["dropped_attributes_count"]) == ("NOTICE", "cart.added", 1, 2)
    assert attrs["otel"]["severity_number"] == 10
    _valid(out)


def test_a_severity_the_level_already_says_is_not_repeated() -> None:
    plain = _one(otlp.OtlpRecord(time_unix_nano=NOW_NS, severity_number=13,
                                 severity_text="WARN", body="x"))
    assert plain["level"] == "warning"
    assert "attributes" not in plain  # nothing left to keep: no otel namespace at all
    trace = _one(otlp.OtlpRecord(time_unix_nano=NOW_NS, severity_number=1,
                                 severity_text="TRACE", body="x"))
    assert trace["attributes"]["otel"] == {"severity_text": "TRACE", "severity_number": 1}
    _valid(trace)


def test_fields_that_would_not_fit_are_left_in_the_resource_not_refused() -> None:
    resource = {"deployment.environment.name": "e" * 30, "service.version": 3}
    out = _one(otlp.OtlpRecord(body="x"), resource)
    assert "environment" not in out and "release" not in out
    assert out["attributes"]["otel"]["resource"] == resource
    _valid(out)


def test_over_long_texts_are_cut_and_say_so() -> None:
    out = _one(otlp.OtlpRecord(body={"big": "y" * 20_000}, attributes={
        "exception.type": "E" * 300, "exception.stacktrace": "s" * 60_000}))
    assert len(out["message"]) == 10_000 and out["message"].endswith("…")
    assert len(out["error_type"]) == 255
    assert len(out["stack_trace"]) == 50_000
    assert out["attributes"]["otel"]["truncated"] == ["error_type", "stack_trace", "message"]
    assert out["attributes"]["otel"]["body"] == {"big": "y" * 20_000}
    _valid(out)


def test_ids_of_the_wrong_size_are_kept_aside_and_zero_ids_mean_no_trace() -> None:
    out = _one(otlp.OtlpRecord(body="x", trace_id="abc", span_id="00" * 8))
    assert "trace_id" not in out
    assert out["attributes"]["otel"]["trace_id"] == "abc"
    assert _valid(out)["span_id"] is None


def test_time_falls_back_to_observed_then_received() -> None:
    ns = 1_700_000_000_123_456_789
    stored = datetime(2023, 11, 14, 22, 13, 20, 123457, tzinfo=UTC)  # to the microsecond
    with_time = _one(otlp.OtlpRecord(time_unix_nano=ns))
    assert _valid(with_time)["timestamp"] == stored
    observed = _one(otlp.OtlpRecord(observed_time_unix_nano=ns))
    assert _valid(observed)["timestamp"] == stored
    assert observed["attributes"]["otel"]["time"] == "observed"
    received = _one(otlp.OtlpRecord())
    assert received["timestamp"] == pytest.approx(NOW_NS / 1e9, abs=1e-6)
    far = _one(otlp.OtlpRecord(time_unix_nano=(1 << 64) - 1))
    with pytest.raises(events.InvalidLog, match=r"future|out of range"):
        _valid(far)


def test_log_ids_depend_on_content_and_position_only() -> None:
    record = otlp.OtlpRecord(time_unix_nano=NOW_NS, body="same")
    scope = otlp.OtlpScope(records=[record, record])
    first = otlp.to_records([otlp.OtlpResource({}, [scope])], received_ns=1)
    again = otlp.to_records([otlp.OtlpResource({}, [scope])], received_ns=2)
    assert [r["log_id"] for r in first] == [r["log_id"] for r in again]
    assert first[0]["log_id"] != first[1]["log_id"]
    log_id = first[0]["log_id"]
    assert log_id[14] == "8"  # version 8 ...
    assert int(log_id.replace("-", "")[:12], 16) == NOW_NS // 1_000_000  # ... time first
    _valid(first[0])


def test_json_decoding_accepts_both_field_spellings_and_reports_where_it_fails() -> None:
    [resource] = otlp.decode_json({"resource_logs": [{"scope_logs": [{"log_records": [
        {"time_unix_nano": 5, "severity_number": 9, "body": {"string_value": "x"}}]}]}]})
    record = resource.scopes[0].records[0]
    assert (record.time_unix_nano, record.severity_number, record.body) == (5, 9, "x")
    with pytest.raises(otlp.OtlpDecodeError, match=r"logRecords\[0\]\.timeUnixNano"):
        otlp.decode_json({"resourceLogs": [{"scopeLogs": [{"logRecords": [
            {"timeUnixNano": "soon"}]}]}]})
    with pytest.raises(otlp.OtlpDecodeError, match=r"attributes\[0\] must be an object"):
        otlp.decode_json({"resourceLogs": [{"resource": {"attributes": [3]}}]})


def test_protobuf_decodes_to_the_same_neutral_form_as_json() -> None:
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attribute = resource_logs.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", "shop"
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "lib"
    record = scope_logs.log_records.add()
    record.time_unix_nano = 7
    record.severity_number = 13
    record.body.kvlist_value.values.add(key="n").value.double_value = float("inf")
    record.trace_id = bytes(range(16))
    record.span_id = bytes(range(8))
    values = record.attributes.add(key="arr").value.array_value.values
    values.add().int_value = -3
    values.add().bytes_value = b"\x00\x01\x02"
    values.add().bool_value = True
    values.add()  # an empty AnyValue

    [decoded] = decode_logs_request(request.SerializeToString())
    [from_json] = otlp.decode_json({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "shop"}}]},
        "scopeLogs": [{"scope": {"name": "lib"}, "logRecords": [{
            "timeUnixNano": "7", "severityNumber": 13,
            "body": {"kvlistValue": {"values": [{"key": "n",
                                                 "value": {"doubleValue": "Infinity"}}]}},
            "traceId": bytes(range(16)).hex(), "spanId": bytes(range(8)).hex(),
            "attributes": [{"key": "arr", "value": {"arrayValue": {"values": [
                {"intValue": "-3"}, {"bytesValue": "AAEC"}, {"boolValue": True}, {}]}}}],
        }]}],
    }]})
    assert decoded == from_json


def test_undecodable_protobuf_is_a_decode_error() -> None:
    with pytest.raises(otlp.OtlpDecodeError, match="not an OTLP"):
        decode_logs_request(b"\x0a\xff\xff")


def test_the_protobuf_answer_sets_partial_success_only_when_something_was_refused() -> None:
    empty = logs_service_pb2.ExportLogsServiceResponse.FromString(encode_logs_response(0, ""))
    assert not empty.HasField("partial_success")
    some = logs_service_pb2.ExportLogsServiceResponse.FromString(
        encode_logs_response(3, "why"))
    assert (some.partial_success.rejected_log_records, some.partial_success.error_message) == (
        3, "why")
