"""What the daemons answer each other, as plain models (no protobuf here).

The typed clients of ``ledger.rpc`` take and return these and the models of the other core
modules (``Project``, ``Account``, ``ApiKeyRow``, ``KeyIdentity``, ``NotificationPreference``);
``ledger.rpc.convert`` is where they become messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ledger.core.accounts import Account
from ledger.core.api_keys import ApiKeyRow
from ledger.core.events import ItemError

#: How an ingest body is shaped: one log object, or ``{"logs": [...]}``.
IngestShape = Literal["single", "batch"]


@dataclass(frozen=True, slots=True)
class DaemonHealth:
    """A daemon's own report: ``checks`` maps each dependency to "ok" or what is wrong."""

    daemon: str
    version: str
    healthy: bool
    checks: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """One HTTP ingest request as the gateway forwards it (the body is still raw JSON)."""

    project_id: str
    shape: IngestShape
    body: bytes
    retention_days: int
    daily_quota: int


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ingest did with one request: counts, the rejected items and the new log ids."""

    accepted: int
    rejected: int
    errors: tuple[ItemError, ...] = ()
    message: str = ""
    ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A session just opened or rotated: the only time its refresh token exists in clear."""

    account: Account
    session_id: str
    refresh_token: str
    refresh_expires_at: str


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    """A key just created: its row and, this once, the full key."""

    key: ApiKeyRow
    full_key: str


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of stored logs; ``logs_json`` is the JSON array query already encoded."""

    logs_json: bytes
    total: int
    total_exact: bool
    has_more: bool
    next_cursor: str


@dataclass(frozen=True, slots=True)
class ErrorGroupPage:
    """One page of error groups; ``groups_json`` is the JSON array query already encoded."""

    groups_json: bytes
    total: int
    has_more: bool
