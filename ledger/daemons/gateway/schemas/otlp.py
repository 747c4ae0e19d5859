"""OTLP's answer to a logs export, as ``/openapi.json`` describes ``POST /v1/logs``.

The route answers with orjson (JSON) or protobuf bodies of exactly this shape
(``routes/otlp.py``); the request body is OTLP's own ``ExportLogsServiceRequest``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class OtlpPartialSuccess(BaseModel):
    """What was refused, when something was (OTLP ``ExportLogsPartialSuccess``)."""

    model_config = ConfigDict(populate_by_name=True)

    rejected_log_records: str = Field(
        ..., alias="rejectedLogRecords",
        description="How many records were refused (an int64, as a decimal string).")
    error_message: str = Field(..., alias="errorMessage",
                               description="Why: the first refused records and their reasons.")


class OtlpExportLogsResponse(BaseModel):
    """OTLP ``ExportLogsServiceResponse``; JSON for a JSON request, protobuf otherwise."""

    model_config = ConfigDict(populate_by_name=True)

    partial_success: OtlpPartialSuccess | None = Field(
        None, alias="partialSuccess", description="Absent when every record was accepted.")
