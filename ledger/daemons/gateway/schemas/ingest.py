"""Pydantic models that describe the gateway's bodies in ``/openapi.json``.

The ingest handlers never parse with these (the body goes to ingest as raw bytes, where the
rules of DESIGN §3 run once): ``LogRecord`` and ``IngestBatchRequest`` exist so that the
OpenAPI document states those rules exactly, from the same constants ``ledger.core.events``
enforces. Response models are used for documentation the same way: hot handlers return
orjson-encoded ``Response`` objects of exactly these shapes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from ledger.core.events import (
    IMPORTANCES,
    LEVELS,
    LOG_TYPES,
    MAX_ATTRIBUTES_BYTES,
    MAX_ATTRIBUTES_DEPTH,
    MAX_BATCH_ITEMS,
    MAX_FINGERPRINT_ITEM_CHARS,
    MAX_FINGERPRINT_ITEMS,
    MAX_FUTURE,
    TEXT_LIMITS,
)


def _text(field: str, description: str) -> Any:
    return Field(None, max_length=TEXT_LIMITS[field], description=description)


def _choice(values: tuple[str, ...], default: str | None, description: str) -> Any:
    extra: JsonDict = {"enum": list(values)}
    if default is None:
        return Field(..., description=description, json_schema_extra=extra)
    return Field(default, description=description, json_schema_extra=extra)


class LogRecord(BaseModel):
    """One log or exception (DESIGN §3). Fields not listed here are accepted and ignored."""

    model_config = ConfigDict(extra="allow", title="LogRecord")

    timestamp: str | float = Field(
        ..., description=(
            "When it happened: ISO-8601 (naive means UTC) or seconds since the epoch"
            " (numbers ≥ 1e11 are milliseconds). At most"
            f" {int(MAX_FUTURE.total_seconds())} s in the future and not older than the"
            " project's retention."),
        examples=["2025-01-31T12:00:00Z"])
    level: str = _choice(LEVELS, None, "Severity (case-insensitive).")
    log_type: str = _choice(LOG_TYPES, "logger", "Kind of log (case-insensitive).")
    importance: str = _choice(IMPORTANCES, "standard", "Importance (case-insensitive).")
    message: str | None = _text("message", "The log message.")
    error_type: str | None = _text("error_type", "Exception class; required for exception logs.")
    error_message: str | None = _text(
        "error_message", "Exception message; required (may be empty) for exception logs.")
    stack_trace: str | None = _text("stack_trace", "Stack trace as text.")
    environment: str | None = _text("environment", "e.g. production.")
    release: str | None = _text("release", "Application version.")
    sdk_version: str | None = _text("sdk_version", "Version of the sending SDK.")
    platform: str | None = _text("platform", "e.g. python.")
    platform_version: str | None = _text("platform_version", "e.g. 3.12.1.")
    attributes: dict[str, Any] | None = Field(
        None, description=(
            f"Free-form JSON object, at most {MAX_ATTRIBUTES_BYTES} bytes serialised and"
            f" {MAX_ATTRIBUTES_DEPTH} levels deep. Endpoint logs need attributes.endpoint"
            " with method, path, status_code and duration_ms."))
    log_id: str | None = Field(
        None, description="Client-chosen UUID: an idempotency key (a retry is stored once).",
        json_schema_extra={"format": "uuid"})
    trace_id: str | None = Field(None, pattern="^[0-9a-fA-F]{32}$",
                                 description="Trace id, 32 hex digits.")
    span_id: str | None = Field(None, pattern="^[0-9a-fA-F]{16}$",
                                description="Span id, 16 hex digits.")
    fingerprint: list[str] | None = Field(
        None, min_length=1, max_length=MAX_FINGERPRINT_ITEMS,
        description=(
            "Client grouping override; '{{ default }}' expands to the computed fingerprint."
            f" Elements of at most {MAX_FINGERPRINT_ITEM_CHARS} characters."))
    exceptions: list[dict[str, Any]] | None = Field(
        None, description=(
            "The exception chain as Sentry's exception.values: oldest first, the raised"
            " exception last; each {type, value, module, mechanism, stacktrace: {frames}} with"
            " frames caller first ({filename, abs_path, module, function, lineno, colno,"
            " in_app, context_line, pre_context, post_context}). Used for grouping when given;"
            " stored in attributes under '$exceptions'. At most 32 exceptions (the newest kept)"
            " of 250 frames (the innermost kept), 262144 bytes as JSON."))


class IngestBatchRequest(BaseModel):
    """A batch of logs; invalid items are rejected one by one while the valid ones are kept."""

    model_config = ConfigDict(extra="allow")

    logs: list[LogRecord] = Field(..., min_length=1, max_length=MAX_BATCH_ITEMS)


class ErrorResponse(BaseModel):
    """Every error answer: what is wrong and what to do."""

    detail: str


def error_doc(description: str) -> dict[str, Any]:
    """One OpenAPI ``responses`` entry: an ``ErrorResponse`` body and when it happens."""
    return {"model": ErrorResponse, "description": description}


class ItemError(BaseModel):
    """Why one item of a batch was rejected."""

    index: int = Field(..., description="Position of the item in `logs` (from 0).")
    field: str = Field(..., description="The offending field (or `log` for the whole item).")
    reason: str


class IngestSingleResponse(BaseModel):
    accepted: int
    rejected: int
    message: str


class IngestBatchResponse(BaseModel):
    accepted: int
    rejected: int
    errors: list[ItemError]


class IngestBatchRejected(BaseModel):
    """No item of the batch was valid: nothing was queued."""

    detail: str
    accepted: int
    rejected: int
    errors: list[ItemError]


class QueueDepthResponse(BaseModel):
    project_id: str
    queue_depth: int = Field(..., description="Logs accepted and not yet stored.")


class LogConstraints(BaseModel):
    """The rules of DESIGN §3, for SDKs to check before sending."""

    levels: list[str]
    log_types: list[str]
    importances: list[str]
    max_chars: dict[str, int]
    max_attributes_bytes: int
    max_attributes_depth: int
    max_fingerprint_items: int
    max_fingerprint_item_chars: int
    max_batch_items: int
    max_future_seconds: int


class SettingsResponse(BaseModel):
    project_id: str
    project_name: str
    project_slug: str
    project_dsn_id: int = Field(..., description="The project's number in Sentry DSNs.")
    scopes: list[str]
    rate_limit_minute: int = Field(..., description="Requests per minute for this key.")
    rate_limit_hour: int = Field(..., description="Requests per hour for this key.")
    daily_quota: int = Field(..., description="Logs per day (UTC) for the project.")
    retention_days: int
    max_body_bytes: int = Field(..., description="Largest body, after gzip decompression.")
    constraints: LogConstraints


class HealthResponse(BaseModel):
    status: str
    version: str


class DeepHealthResponse(BaseModel):
    status: str = Field(..., description="`ok`, or `unavailable` when any check failed.")
    version: str
    checks: dict[str, str] | None = Field(
        None, description="Operators only (`X-Ledger-Internal-Token`): `ok` or what is wrong,"
                          " per dependency: `redis`, each daemon (`ok` when it answers), and"
                          " each daemon's own checks as `<daemon>.<check>`.")
    breakers: dict[str, str] | None = Field(
        None, description="Operators only: each circuit breaker's state (`closed`, `open`,"
                          " `half_open`): `auth` and `query`.")
