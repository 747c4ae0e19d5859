"""POST /v1/logs end to end: the official OpenTelemetry SDK and hand-built OTLP/JSON bodies
sent to real `ledger serve auth|ingest|gateway` processes, read back from PostgreSQL."""

from __future__ import annotations

import gzip
import time
import uuid
from typing import Any

import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e

RESOURCE = {"service.name": "shop", "service.version": "2.3.1",
            "deployment.environment.name": "staging", "host.name": "web-1"}


def _provider(stack: RunningStack, compression: Compression = Compression.NoCompression,
              headers: dict[str, str] | None = None) -> LoggerProvider:
    provider = LoggerProvider(resource=Resource.create(RESOURCE))
    exporter = OTLPLogExporter(endpoint=f"{stack.url}/v1/logs", compression=compression,
                               headers=headers or {"Authorization": f"Bearer {stack.key}"},
                               timeout=10)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    return provider


SEVERITIES = [
    (SeverityNumber.TRACE, "debug"), (SeverityNumber.DEBUG4, "debug"),
    (SeverityNumber.INFO, "info"), (SeverityNumber.INFO4, "info"),
    (SeverityNumber.WARN, "warning"), (SeverityNumber.WARN2, "warning"),
    (SeverityNumber.ERROR, "error"), (SeverityNumber.ERROR4, "error"),
    (SeverityNumber.FATAL, "critical"), (SeverityNumber.FATAL4, "critical"),
]


def test_the_official_sdk_stores_levels_exceptions_endpoints_and_resource_fields(
    running_stack: RunningStack,
) -> None:
    marker = uuid.uuid4().hex
    provider = _provider(running_stack, Compression.Gzip)
    logger = provider.get_logger("shop.checkout", "1.0")
    for number, _ in SEVERITIES:
        logger.emit(severity_number=number, body=f"{marker} severity {number.value}",
                    attributes={"user.id": 42, "cart": ["a", "b"]})
    logger.emit(severity_text="WARN", body=f"{marker} text only")
    try:
        {}["missing"]
    except KeyError as exc:
        logger.emit(severity_number=SeverityNumber.ERROR, body=f"{marker} checkout failed",
                    exception=exc)
    logger.emit(severity_number=SeverityNumber.INFO, body=f"{marker} GET /orders/42",
                attributes={"http.request.method": "GET", "http.route": "/orders/{id}",
                            "http.response.status_code": 200,
                            "http.server.request.duration": 0.0125, "url.path": "/orders/42"})
    assert provider.force_flush(10_000)
    provider.shutdown()

    rows = running_stack.with_marker(marker, len(SEVERITIES) + 3)
    by_message = {row["message"]: row for row in rows}
    assert len(by_message) == len(SEVERITIES) + 3
    for number, level in SEVERITIES:
        row = by_message[f"{marker} severity {number.value}"]
        assert row["level"] == level
        assert row["log_type"] == "logger"
        assert row["release"] == "2.3.1"
        assert row["environment"] == "staging"
        assert row["platform"] == "python"
        assert row["attributes"]["user.id"] == 42
        assert row["attributes"]["cart"] == ["a", "b"]
        assert row["attributes"]["service.name"] == "shop"
        assert row["attributes"]["otel"]["resource"]["host.name"] == "web-1"
        assert row["attributes"]["otel"]["scope"] == {"name": "shop.checkout", "version": "1.0"}
        # Kept when the level does not say it (TRACE, DEBUG4, INFO4...), not for INFO itself.
        assert row["attributes"]["otel"].get("severity_number") == (
            None if number.value in (5, 9, 13, 17, 21) else number.value)
    assert by_message[f"{marker} text only"]["level"] == "warning"

    failed = by_message[f"{marker} checkout failed"]
    assert failed["log_type"] == "exception"
    assert failed["error_type"] == "KeyError"
    assert failed["error_message"] == "'missing'"
    assert 'in test_the_official_sdk' in failed["stack_trace"]
    assert failed["error_fingerprint"] is not None
    assert "exception.stacktrace" not in failed["attributes"]

    endpoint = by_message[f"{marker} GET /orders/42"]
    assert endpoint["log_type"] == "endpoint"
    assert endpoint["attributes"]["endpoint"] == {
        "method": "GET", "path": "/orders/{id}", "status_code": 200, "duration_ms": 12.5}
    assert endpoint["attributes"]["url.path"] == "/orders/42"


def test_the_exporter_key_header_and_trace_context_are_kept(running_stack: RunningStack,
                                                            ) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    marker = uuid.uuid4().hex
    provider = _provider(running_stack, headers={"x-api-key": running_stack.key})
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("checkout") as span:
        provider.get_logger("x").emit(severity_number=SeverityNumber.INFO, body=marker)
        context = span.get_span_context()
    assert provider.force_flush(10_000)
    provider.shutdown()
    [row] = running_stack.with_marker(marker, 1)
    assert row["trace_id"] == f"{context.trace_id:032x}"
    assert row["span_id"] == f"{context.span_id:016x}"


def _kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def _json_request(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceLogs": [{
        "resource": {"attributes": [_kv("service.name", {"stringValue": "api"}),
                                    _kv("deployment.environment", {"stringValue": "prod"})]},
        "scopeLogs": [{"scope": {"name": "hand"}, "logRecords": records}],
    }]}


def _post_json(stack: RunningStack, document: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{stack.url}/v1/logs", json=document, timeout=30,
                      headers={"Authorization": f"Bearer {stack.key}"}, **kwargs)


def test_hand_built_json_with_every_any_value_kind(running_stack: RunningStack) -> None:
    marker = uuid.uuid4().hex
    now = str(time.time_ns())
    attributes = [
        _kv("s", {"stringValue": "text"}), _kv("b", {"boolValue": True}),
        _kv("i", {"intValue": "9007199254740993"}), _kv("d", {"doubleValue": 1.5}),
        _kv("nan", {"doubleValue": "NaN"}),
        _kv("arr", {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "two"}]}}),
        _kv("kv", {"kvlistValue": {"values": [_kv("inner", {"boolValue": False})]}}),
        _kv("bytes", {"bytesValue": "AAEC"}), _kv("empty", {}),
    ]
    records = [
        {"timeUnixNano": now, "severityNumber": 9, "body": {"stringValue": f"{marker} plain"},
         "attributes": attributes, "traceId": "5b8efff798038103d269b633813fc60c",
         "spanId": "eee19b7ec3c1b174"},
        {"timeUnixNano": now, "severityNumber": "SEVERITY_NUMBER_WARN",
         "body": {"kvlistValue": {"values": [_kv("event", {"stringValue": marker})]}}},
        {"timeUnixNano": "0", "observedTimeUnixNano": now, "severityText": "error",
         "body": {"arrayValue": {"values": [{"stringValue": marker}, {"intValue": "7"}]}}},
    ]
    response = _post_json(running_stack, _json_request(records))
    assert response.status_code == 200, response.text
    assert response.json() == {}
    assert response.headers["content-type"] == "application/json"

    rows = running_stack.with_marker(marker, 3)
    by_level = {row["level"]: row for row in rows}
    plain = by_level["info"]
    assert plain["environment"] == "prod"
    assert plain["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert plain["span_id"] == "eee19b7ec3c1b174"
    assert {k: plain["attributes"][k] for k in ("s", "b", "i", "d", "nan", "arr", "kv",
                                                 "bytes", "empty")} == {
        "s": "text", "b": True, "i": 9007199254740993, "d": 1.5, "nan": "NaN",
        "arr": [1, "two"], "kv": {"inner": False}, "bytes": "AAEC", "empty": None}
    assert by_level["warning"]["message"] == f'{{"event":"{marker}"}}'
    observed = by_level["error"]
    assert observed["message"] == f'["{marker}",7]'
    assert observed["attributes"]["otel"]["time"] == "observed"
    assert abs(observed["timestamp"].timestamp() - int(now) / 1e9) < 0.001


def test_a_gzip_json_body(running_stack: RunningStack) -> None:
    marker = uuid.uuid4().hex
    body = httpx.Request("POST", "/", json=_json_request([
        {"severityNumber": 17, "body": {"stringValue": marker}}])).content
    response = httpx.post(f"{running_stack.url}/v1/logs", content=gzip.compress(body),
                          headers={"Authorization": f"Bearer {running_stack.key}",
                                   "Content-Type": "application/json",
                                   "Content-Encoding": "gzip"}, timeout=30)
    assert response.status_code == 200, response.text
    [row] = running_stack.with_marker(marker, 1)
    assert row["level"] == "error"
    assert row["attributes"]["otel"]["time"] == "received"  # no time at all: when it arrived


def test_1001_records_are_refused_whole_and_1000_accepted(running_stack: RunningStack) -> None:
    marker = uuid.uuid4().hex
    record = {"severityNumber": 9, "body": {"stringValue": f"{marker} bulk"}}
    too_many = _post_json(running_stack, _json_request([record] * 1001))
    assert too_many.status_code == 413
    assert "at most 1000" in too_many.json()["detail"]

    accepted = _post_json(running_stack, _json_request([record] * 1000))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {}
    # Identical records at different positions are different logs: all 1 000 are stored.
    assert len(running_stack.with_marker(marker, 1000)) == 1000


def _protobuf_request(records: int, marker: str, *, future: int = 0) -> bytes:
    from opentelemetry.proto.logs.v1 import logs_pb2

    request = logs_service_pb2.ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    now = time.time_ns()
    for i in range(records):
        record: logs_pb2.LogRecord = scope.log_records.add()
        record.time_unix_nano = now + (600 * 10**9 if i < future else 0)
        record.severity_number = logs_pb2.SEVERITY_NUMBER_INFO
        record.body.string_value = f"{marker} {i}"
    return request.SerializeToString()


def test_partial_success_counts_refused_records_and_says_why(running_stack: RunningStack,
                                                             ) -> None:
    marker = uuid.uuid4().hex
    response = httpx.post(f"{running_stack.url}/v1/logs",
                          content=_protobuf_request(5, marker, future=2),
                          headers={"Authorization": f"Bearer {running_stack.key}",
                                   "Content-Type": "application/x-protobuf"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = logs_service_pb2.ExportLogsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_log_records == 2
    message = answer.partial_success.error_message
    assert "resourceLogs[0].scopeLogs[0].logRecords[0]: timestamp:" in message
    assert "logRecords[1]" in message and "future" in message
    rows = running_stack.with_marker(marker, 3)
    assert sorted(row["message"] for row in rows) == [f"{marker} {i}" for i in (2, 3, 4)]


def test_a_resent_request_is_stored_once(running_stack: RunningStack) -> None:
    marker = uuid.uuid4().hex
    body = _protobuf_request(20, marker)
    headers = {"X-API-Key": running_stack.key, "Content-Type": "application/x-protobuf"}
    for _ in range(2):  # an exporter retrying after a timeout sends the same bytes again
        response = httpx.post(f"{running_stack.url}/v1/logs", content=body, headers=headers,
                              timeout=30)
        assert response.status_code == 200
    running_stack.wait_drained()
    assert len(running_stack.with_marker(marker, 20, deadline_seconds=0)) == 20


@pytest.mark.parametrize(("content_type", "body", "status", "detail"), [
    ("application/x-protobuf", b"\xff\xff\xff\xff", 400, "not an OTLP"),
    ("application/json", b'{"resourceLogs": {}}', 400, "resourceLogs must be an array"),
    ("application/json", b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": 3}]}]}]}',
     400, "resourceLogs[0].scopeLogs[0].logRecords[0].body must be an AnyValue"),
    ("application/json", b"{not json", 400, "malformed JSON"),
    ("text/plain", b"hello", 415, "application/x-protobuf"),
])
def test_bad_bodies_get_a_clear_4xx(running_stack: RunningStack, content_type: str, body: bytes,
                                    status: int, detail: str) -> None:
    response = httpx.post(f"{running_stack.url}/v1/logs", content=body,
                          headers={"X-API-Key": running_stack.key,
                                   "Content-Type": content_type}, timeout=30)
    assert response.status_code == status
    assert detail in response.json()["detail"]


def test_no_key_is_401_and_over_the_rate_limit_is_429_with_retry_after(
    running_stack: RunningStack,
) -> None:
    body = _protobuf_request(1, uuid.uuid4().hex)
    headers = {"Content-Type": "application/x-protobuf"}
    assert httpx.post(f"{running_stack.url}/v1/logs", content=body, headers=headers,
                      timeout=30).status_code == 401
    limited = running_stack.create_key(scopes=["ingest"], rate_limit_minute=1)
    headers["Authorization"] = f"Bearer {limited}"
    first = httpx.post(f"{running_stack.url}/v1/logs", content=body, headers=headers, timeout=30)
    assert first.status_code == 200
    second = httpx.post(f"{running_stack.url}/v1/logs", content=body, headers=headers, timeout=30)
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) > 0


def test_v1_logs_is_in_the_openapi_document(running_stack: RunningStack) -> None:
    document = httpx.get(f"{running_stack.url}/openapi.json", timeout=30).json()
    operation = document["paths"]["/v1/logs"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/x-protobuf",
                                                         "application/json"}
    assert {"200", "400", "413", "429", "503"} <= set(operation["responses"])
