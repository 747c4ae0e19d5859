"""Models describing the logs and error-group answers in ``/openapi.json``.

The handlers pass the query daemon's JSON through (encoded once, there) and never build these
models; they exist so that the document states the shapes exactly. Parameters are listed in
``LOG_PARAMETERS`` / ``GROUP_PARAMETERS`` from the constants ``ledger.core`` enforces.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ledger.core import error_groups, log_search


class StoredLog(BaseModel):
    """A stored log: the fields sent (DESIGN §3) plus what ingest added."""

    id: str = Field(description="UUIDv7 given at ingest, or the client's log_id.")
    project_id: str
    timestamp: str = Field(description="ISO-8601, UTC.")
    ingested_at: str
    level: str
    log_type: str
    importance: str
    message: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    stack_trace: str | None = None
    environment: str | None = None
    release: str | None = None
    sdk_version: str | None = None
    platform: str | None = None
    platform_version: str | None = None
    attributes: dict[str, Any] | None = None
    trace_id: str | None = None
    span_id: str | None = None
    fingerprint: list[str] | None = Field(None, description="The client's grouping override.")
    error_fingerprint: str | None = Field(None, description="Error group fingerprint.")
    fingerprint_version: int | None = None


class LogPage(BaseModel):
    """One page of logs, newest first."""

    logs: list[StoredLog]
    total: int = Field(description=(
        f"Matching logs, counted up to {log_search.TOTAL_CAP}. When total_exact is false it is a"
        " lower bound: the count reached the cap, or was still running when the page was ready"
        " (later pages of the same filters get it from a short-lived cache)."))
    total_exact: bool
    has_more: bool
    next_cursor: str | None = Field(description="Pass as cursor= for the next page.")


class ErrorGroup(BaseModel):
    """Events of one fingerprint in one project."""

    id: str
    project_id: str
    fingerprint: str
    fingerprint_version: int
    title: str
    error_type: str | None = None
    level: str
    log_type: str
    status: str = Field(json_schema_extra={"enum": list(error_groups.STATUSES)})
    first_seen: str
    last_seen: str
    event_count: int
    last_release: str | None = None
    resolved_in_release: str | None = None
    resolved_at: str | None = None
    sample_log_id: str | None = None
    updated_at: str
    merged_into: str | None = Field(None, description="The group this one was merged into.")
    components: dict[str, Any] = Field(description="What contributed to the fingerprint.")
    why_grouped: str = Field(description="The components, said in one sentence.")


class ErrorGroupDetail(ErrorGroup):
    """A group with an example event."""

    sample_log: StoredLog | None = None
    merges: list[dict[str, Any]] | None = Field(
        None, description="Merges into or out of this group, newest first, unmerged included.")


class ErrorGroupPage(BaseModel):
    """One page of a project's error groups."""

    error_groups: list[ErrorGroup]
    total: int
    has_more: bool


class StatusChange(BaseModel):
    """Triage an error group."""

    status: str = Field(json_schema_extra={"enum": list(error_groups.STATUSES)})
    resolved_in_release: str | None = Field(
        None, max_length=error_groups.MAX_RELEASE_CHARS,
        description=("Only with status resolved: events from older releases do not reopen the"
                     " group; events from this release or newer do (a regression)."))


#: What the query daemon reads as "not given" (``log_search._one``): empty or only blanks.
_ABSENT = {"type": "string", "pattern": "^\\s*$"}


def _param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    # `period=` is the same as no period: say so, or a client keeping to the document could
    # never send the empty fields of a form, and a checker would call their 200 a violation.
    return {"name": name, "in": "query", "required": False,
            "description": f"{description} Empty means not given.",
            "schema": {"anyOf": [schema, _ABSENT]}}


def _list_of(values: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "description": "comma-separated", "examples": [",".join(values[:2])],
            "pattern": f"^({'|'.join(values)})(,({'|'.join(values)}))*$"}


PROJECT_PARAMETER = _param(
    "project_id", "Project id or slug. Implied by an API key; required for an account with"
    " several projects.", {"type": "string"})

LOG_PARAMETERS: list[dict[str, Any]] = [
    PROJECT_PARAMETER,
    _param("period", "Preset window (UTC). Without period or periodFrom/periodTo: the project's"
           " retention.", {"type": "string", "enum": list(log_search.PERIODS)}),
    _param("periodFrom", "Start, ISO-8601 (inclusive).", {"type": "string",
                                                          "format": "date-time"}),
    _param("periodTo", "End, ISO-8601 (exclusive).", {"type": "string", "format": "date-time"}),
    _param("level", "Levels, comma-separated.", _list_of(log_search.LEVELS)),
    _param("log_type", "Log types, comma-separated.", _list_of(log_search.LOG_TYPES)),
    _param("environment", "Environments, comma-separated.", {"type": "string"}),
    _param("release", "Releases, comma-separated.", {"type": "string"}),
    _param("error_fingerprint", "Logs of one error group.", {"type": "string", "maxLength": 128}),
    _param("search", "Text in message, error_type or error_message (case-insensitive; % and _"
           " are literal).", {"type": "string", "maxLength": log_search.MAX_SEARCH_CHARS}),
    _param("limit", "Page size.", {"type": "integer", "minimum": 1,
                                   "maximum": log_search.MAX_LIMIT,
                                   "default": log_search.DEFAULT_LIMIT}),
    _param("offset", "Rows to skip (prefer cursor beyond the first pages).",
           {"type": "integer", "minimum": 0, "maximum": log_search.MAX_OFFSET, "default": 0}),
    _param("cursor", "next_cursor of the previous page (same filters).", {"type": "string"}),
]

GROUP_PARAMETERS: list[dict[str, Any]] = [
    PROJECT_PARAMETER,
    _param("status", "Statuses, comma-separated.", _list_of(error_groups.STATUSES)),
    _param("sort", "Order.", {"type": "string", "enum": list(error_groups.SORTS),
                              "default": "last_seen"}),
    _param("search", "Text in the title or error type.",
           {"type": "string", "maxLength": log_search.MAX_SEARCH_CHARS}),
    _param("limit", "Page size.", {"type": "integer", "minimum": 1,
                                   "maximum": error_groups.MAX_LIMIT,
                                   "default": error_groups.DEFAULT_LIMIT}),
    _param("offset", "Groups to skip.", {"type": "integer", "minimum": 0,
                                         "maximum": error_groups.MAX_OFFSET, "default": 0}),
]
