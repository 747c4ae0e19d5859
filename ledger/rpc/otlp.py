"""OTLP protobuf logs <-> the neutral form of ``ledger.core.otlp`` (PyPI ``opentelemetry-proto``).

Generated ``*_pb2`` modules may only be imported under ``proto/``, ``rpc/`` and the servicers
(CONVENTIONS.md), so the gateway's ``/v1/logs`` route decodes protobuf bodies and encodes its
answers here; the mapping to Ledger records stays in the core.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from ledger.core.otlp import (
    OtlpDecodeError,
    OtlpRecord,
    OtlpResource,
    OtlpScope,
    bytes_value,
    finite,
)

__all__ = ["decode_logs_request", "encode_logs_response"]

_INT64_LIMIT = 1 << 63


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return finite(value.double_value)
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return bytes_value(value.bytes_value)
    return None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def decode_logs_request(body: bytes) -> list[OtlpResource]:
    """An OTLP protobuf ``ExportLogsServiceRequest`` in the neutral form.

    Raises:
        OtlpDecodeError: the bytes are not such a message (truncated, wrong type, bad UTF-8).
    """
    try:
        request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
    except (DecodeError, RecursionError) as exc:
        raise OtlpDecodeError(
            "the body is not an OTLP ExportLogsServiceRequest in protobuf: send it as the"
            " OpenTelemetry exporter does, or as OTLP/JSON with Content-Type: application/json"
        ) from exc
    resources: list[OtlpResource] = []
    for resource_logs in request.resource_logs:
        resource = OtlpResource(attributes=_attributes(resource_logs.resource.attributes))
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            resource.scopes.append(OtlpScope(
                name=scope.name, version=scope.version,
                attributes=_attributes(scope.attributes),
                # Positional, in OtlpRecord's field order: the hot loop of a 1 000-record export.
                records=[OtlpRecord(
                    record.time_unix_nano, record.observed_time_unix_nano,
                    record.severity_number, record.severity_text,
                    _value(record.body),  # an unset body reads as an empty AnyValue: None
                    {pair.key: _value(pair.value) for pair in record.attributes},
                    record.trace_id.hex(), record.span_id.hex(), record.flags,
                    record.event_name, record.dropped_attributes_count,
                ) for record in scope_logs.log_records],
            ))
        resources.append(resource)
    return resources


def encode_logs_response(rejected: int, error_message: str) -> bytes:
    """An ``ExportLogsServiceResponse``; ``partial_success`` only when something was rejected
    (OTLP: a fully accepted request leaves it unset)."""
    response = logs_service_pb2.ExportLogsServiceResponse()
    if rejected or error_message:
        response.partial_success.rejected_log_records = min(rejected, _INT64_LIMIT - 1)
        response.partial_success.error_message = error_message
    return response.SerializeToString()
