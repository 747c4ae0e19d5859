"""Core models <-> protobuf messages: the only module where the two meet.

Timestamps travel as ISO-8601 strings, "" when unset. Optional limits travel as 0 meaning
"none of its own" (an API key following its project's limit).
"""

from __future__ import annotations

from datetime import datetime

from ledger.core.accounts import Account
from ledger.core.api_keys import ApiKeyRow, KeyIdentity
from ledger.core.events import ItemError
from ledger.core.notification_prefs import NotificationPreference
from ledger.core.projects import Project
from ledger.core.rpc_models import (
    CreatedApiKey,
    DaemonHealth,
    ErrorGroupPage,
    IngestRequest,
    IngestResult,
    IssuedSession,
    LogPage,
)
from ledger.proto import auth_pb2, health_pb2, ingest_pb2, query_pb2


def _ts(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _dt(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _required_dt(value: str) -> datetime:
    parsed = _dt(value)
    if parsed is None:
        raise ValueError("a required timestamp is missing from the message")
    return parsed


# -- identities ---------------------------------------------------------------------------------


def identity_to_proto(identity: KeyIdentity) -> auth_pb2.KeyIdentity:
    """Core identity -> message."""
    return auth_pb2.KeyIdentity(
        key_id=identity.key_id, project_id=identity.project_id,
        project_slug=identity.project_slug, project_name=identity.project_name,
        scopes=list(identity.scopes), rate_limit_minute=identity.rate_limit_minute,
        rate_limit_hour=identity.rate_limit_hour, daily_quota=identity.daily_quota,
        retention_days=identity.retention_days, project_dsn_id=identity.project_dsn_id,
        account_id=identity.account_id,
    )


def identity_from_proto(message: auth_pb2.KeyIdentity) -> KeyIdentity:
    """Message -> core identity (what the gateway caches)."""
    return KeyIdentity(
        key_id=message.key_id, project_id=message.project_id,
        project_slug=message.project_slug, project_name=message.project_name,
        scopes=tuple(message.scopes), rate_limit_minute=message.rate_limit_minute,
        rate_limit_hour=message.rate_limit_hour, daily_quota=message.daily_quota,
        retention_days=message.retention_days, project_dsn_id=message.project_dsn_id,
        account_id=message.account_id,
    )


# -- API keys -----------------------------------------------------------------------------------


def api_key_to_proto(key: ApiKeyRow) -> auth_pb2.ApiKey:
    """Core key row -> message (no secret exists in either)."""
    return auth_pb2.ApiKey(
        id=key.id, key_id=key.key_id, project_id=key.project_id, name=key.name,
        key_prefix=key.key_prefix, scopes=list(key.scopes), status=key.status,
        rate_limit_minute=key.rate_limit_minute or 0, rate_limit_hour=key.rate_limit_hour or 0,
        created_at=_ts(key.created_at), last_used_at=_ts(key.last_used_at),
        revoked_at=_ts(key.revoked_at),
    )


def api_key_from_proto(message: auth_pb2.ApiKey) -> ApiKeyRow:
    """Message -> core key row."""
    return ApiKeyRow(
        id=message.id, key_id=message.key_id, project_id=message.project_id, name=message.name,
        key_prefix=message.key_prefix, scopes=tuple(message.scopes), status=message.status,
        rate_limit_minute=message.rate_limit_minute or None,
        rate_limit_hour=message.rate_limit_hour or None,
        created_at=_required_dt(message.created_at), last_used_at=_dt(message.last_used_at),
        revoked_at=_dt(message.revoked_at),
    )


# -- projects -----------------------------------------------------------------------------------


def project_to_proto(project: Project) -> auth_pb2.Project:
    """Core project -> message."""
    return auth_pb2.Project(
        id=project.id, account_id=project.account_id, name=project.name, slug=project.slug,
        environment=project.environment, retention_days=project.retention_days,
        daily_quota=project.daily_quota, rate_limit_minute=project.rate_limit_minute,
        rate_limit_hour=project.rate_limit_hour, created_at=_ts(project.created_at),
        updated_at=_ts(project.updated_at), dsn_id=project.dsn_id,
    )


def project_from_proto(message: auth_pb2.Project) -> Project:
    """Message -> core project."""
    created = _required_dt(message.created_at)
    return Project(
        id=message.id, account_id=message.account_id, name=message.name, slug=message.slug,
        environment=message.environment, retention_days=message.retention_days,
        daily_quota=message.daily_quota, rate_limit_minute=message.rate_limit_minute,
        rate_limit_hour=message.rate_limit_hour, created_at=created,
        updated_at=_dt(message.updated_at) or created, dsn_id=message.dsn_id,
    )


# -- accounts -----------------------------------------------------------------------------------


def account_to_proto(account: Account) -> auth_pb2.Account:
    """Core account -> message (never a password hash)."""
    return auth_pb2.Account(
        id=account.id, email=account.email, name=account.name,
        created_at=_ts(account.created_at), updated_at=_ts(account.updated_at),
    )


def account_from_proto(message: auth_pb2.Account) -> Account:
    """Message -> core account."""
    created = _required_dt(message.created_at)
    return Account(id=message.id, email=message.email, name=message.name, created_at=created,
                   updated_at=_dt(message.updated_at) or created)


# -- notification preferences (appended by the live engineer) ---------------------------------


def preference_to_proto(pref: NotificationPreference) -> auth_pb2.NotificationPreference:
    """Core preference -> message (``log_types`` None travels as ``all_log_types``)."""
    return auth_pb2.NotificationPreference(
        project_id=pref.project_id, project_slug=pref.project_slug, enabled=pref.enabled,
        levels=list(pref.levels), all_log_types=pref.log_types is None,
        log_types=list(pref.log_types or ()), updated_at=_ts(pref.updated_at))


def preference_from_proto(message: auth_pb2.NotificationPreference) -> NotificationPreference:
    """Message -> core preference."""
    return NotificationPreference(
        project_id=message.project_id, project_slug=message.project_slug,
        enabled=message.enabled, levels=tuple(message.levels),
        log_types=None if message.all_log_types else tuple(message.log_types),
        updated_at=_dt(message.updated_at))


# -- sessions and new keys ----------------------------------------------------------------------


def session_from_proto(message: auth_pb2.Session) -> IssuedSession:
    """Message -> a session just issued (the expiry stays the auth daemon's ISO string)."""
    return IssuedSession(account=account_from_proto(message.account),
                         session_id=message.session_id, refresh_token=message.refresh_token,
                         refresh_expires_at=message.refresh_expires_at)


def created_key_from_proto(message: auth_pb2.CreateApiKeyResponse) -> CreatedApiKey:
    """Message -> a key just created, with its full key."""
    return CreatedApiKey(key=api_key_from_proto(message.key), full_key=message.full_key)


# -- health -------------------------------------------------------------------------------------


def health_from_proto(message: health_pb2.GetHealthResponse) -> DaemonHealth:
    """Message -> a daemon's health report."""
    return DaemonHealth(daemon=message.daemon, version=message.version,
                        healthy=message.healthy, checks=dict(message.checks))


# -- ingest -------------------------------------------------------------------------------------

_SHAPES = {"single": ingest_pb2.INGEST_SHAPE_SINGLE, "batch": ingest_pb2.INGEST_SHAPE_BATCH}


def ingest_request_to_proto(request: IngestRequest) -> ingest_pb2.IngestLogsRequest:
    """Core ingest request -> message."""
    return ingest_pb2.IngestLogsRequest(
        project_id=request.project_id, shape=_SHAPES[request.shape], body=request.body,
        retention_days=request.retention_days, daily_quota=request.daily_quota)


def ingest_result_from_proto(message: ingest_pb2.IngestLogsResponse) -> IngestResult:
    """Message -> what ingest did with one request."""
    return IngestResult(
        accepted=message.accepted, rejected=message.rejected,
        errors=tuple(ItemError(e.index, e.field, e.reason) for e in message.errors),
        message=message.message, ids=tuple(message.ids))


# -- query --------------------------------------------------------------------------------------


def log_page_from_proto(message: query_pb2.ListLogsResponse) -> LogPage:
    """Message -> one page of logs (still JSON-encoded)."""
    return LogPage(logs_json=message.logs_json, total=message.total,
                   total_exact=message.total_exact, has_more=message.has_more,
                   next_cursor=message.next_cursor)


def group_page_from_proto(message: query_pb2.ListErrorGroupsResponse) -> ErrorGroupPage:
    """Message -> one page of error groups (still JSON-encoded)."""
    return ErrorGroupPage(groups_json=message.groups_json, total=message.total,
                          has_more=message.has_more)
