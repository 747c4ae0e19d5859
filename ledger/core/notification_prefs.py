"""Notification preferences: which live errors an account follows, per project (DESIGN §5).

A project without a stored row follows the defaults (enabled, levels ``error`` and
``critical``, every log type), so a new project notifies without any set-up. Preferences are
only an account's: an API key follows its own project and filters with query parameters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ledger.core.events import LEVELS, LOG_TYPES
from ledger.errors import InvalidInputError, NotFoundError

DEFAULT_LEVELS: tuple[str, ...] = ("error", "critical")

Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class NotificationPreference:
    """What one account follows of one project; ``log_types`` None means all of them."""

    project_id: str
    project_slug: str = ""
    enabled: bool = True
    levels: tuple[str, ...] = DEFAULT_LEVELS
    log_types: tuple[str, ...] | None = None
    updated_at: datetime | None = None  # None: never stored, the defaults

    def allows(self, level: str, log_type: str) -> bool:
        """Whether an event of this level and type reaches the account."""
        return (self.enabled and level in self.levels
                and (self.log_types is None or log_type in self.log_types))


def _choices(value: Any, allowed: tuple[str, ...], field: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidInputError(f"{field} must be a list of strings")
    chosen = tuple(dict.fromkeys(v.strip().lower() for v in value))
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise InvalidInputError(f"unknown {field} {', '.join(unknown)}: use any of"
                                f" {', '.join(allowed)}")
    if not chosen:
        raise InvalidInputError(f"{field} must name at least one; to follow nothing of a"
                                " project, set enabled to false")
    return chosen


def parse_preference(raw: Mapping[str, Any]) -> NotificationPreference:
    """A preference from a request body ``{project_id, enabled?, levels?, log_types?}``.

    Raises:
        InvalidInputError: a field is missing, of the wrong type or has an unknown value.
    """
    if not isinstance(raw, Mapping):
        raise InvalidInputError("each preference must be an object with a project_id")
    project_id = raw.get("project_id")
    if not isinstance(project_id, str) or not project_id.strip():
        raise InvalidInputError("each preference needs a project_id (the project's id or slug)")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidInputError("enabled must be true or false")
    levels = _choices(raw.get("levels", list(DEFAULT_LEVELS)), LEVELS, "levels")
    log_types = raw.get("log_types")
    return NotificationPreference(
        project_id=project_id.strip(), enabled=enabled, levels=levels,
        log_types=None if log_types is None else _choices(log_types, LOG_TYPES, "log_types"))


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _row(r: dict[str, Any]) -> NotificationPreference:
    return NotificationPreference(
        project_id=str(r["id"]), project_slug=r["slug"],
        enabled=True if r["enabled"] is None else r["enabled"],
        levels=tuple(r["levels"] or DEFAULT_LEVELS),
        log_types=None if r["log_types"] is None else tuple(r["log_types"]),
        updated_at=r["updated_at"])


_SELECT = """
SELECT p.id, p.slug, n.enabled, n.levels, n.log_types, n.updated_at
FROM projects p
LEFT JOIN notification_preferences n ON n.project_id = p.id AND n.account_id = p.account_id
WHERE p.account_id = %s
ORDER BY p.slug
"""


async def get_preferences(conn: Conn, account_id: str) -> list[NotificationPreference]:
    """The preference of every project of the account (the defaults where none is stored)."""
    owner = _uuid(account_id)
    if owner is None:
        return []
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SELECT, (owner,))
        return [_row(r) for r in await cur.fetchall()]


_UPSERT = """
INSERT INTO notification_preferences (account_id, project_id, enabled, levels, log_types)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (account_id, project_id) DO UPDATE
SET enabled = EXCLUDED.enabled, levels = EXCLUDED.levels, log_types = EXCLUDED.log_types,
    updated_at = now()
"""


async def set_preferences(conn: Conn, account_id: str,
                          prefs: Iterable[NotificationPreference],
                          ) -> list[NotificationPreference]:
    """Store ``prefs`` (project by id or slug) in one transaction; return all of the account's.

    Raises:
        NotFoundError: a project is not the account's (or does not exist): nothing is stored.
    """
    current = {p.project_id: p for p in await get_preferences(conn, account_id)}
    by_slug = {p.project_slug: p.project_id for p in current.values()}
    rows = []
    for pref in prefs:
        project_id = pref.project_id if pref.project_id in current else by_slug.get(
            pref.project_id)
        if project_id is None:
            raise NotFoundError(f"no project {pref.project_id!r} among this account's projects"
                                " (see GET /api/v1/projects)")
        rows.append((uuid.UUID(account_id), uuid.UUID(project_id), pref.enabled,
                     list(pref.levels), None if pref.log_types is None else list(pref.log_types)))
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(_UPSERT, rows)
    return await get_preferences(conn, account_id)
