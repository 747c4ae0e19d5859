"""Projects: what logs and API keys belong to, each owned by an account (DESIGN §4, §8).

A project carries the defaults its keys inherit (rate limits) and what ingestion enforces
(daily quota, retention). It is found by id or by its slug (``^[a-z0-9-]+$``, at most 64).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import redis.asyncio as aioredis
from psycopg.rows import dict_row

from ledger.config import Settings
from ledger.core import api_keys
from ledger.core.events import uuid7
from ledger.errors import ConflictError, InvalidInputError, NotFoundError

SLUG = re.compile(r"^[a-z0-9-]{1,64}$")
MAX_NAME = 200
MAX_ENVIRONMENT = 20  # the longest `environment` a log may carry (DESIGN §3)

Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class Project:
    """A stored project."""

    id: str
    account_id: str
    name: str
    slug: str
    environment: str
    retention_days: int
    daily_quota: int
    rate_limit_minute: int
    rate_limit_hour: int
    created_at: datetime
    updated_at: datetime
    #: Stable numeric id for Sentry DSNs, which accept only digits as the project segment.
    dsn_id: int = 0


@dataclass(frozen=True)
class ProjectDefaults:
    """Limits a new project starts with (``LEDGER_AUTH_*``)."""

    retention_days: int = 90
    daily_quota: int = 1_000_000
    rate_limit_minute: int = 1000
    rate_limit_hour: int = 50_000

    @classmethod
    def from_settings(cls, settings: Settings) -> ProjectDefaults:
        """The defaults configured for this installation."""
        return cls(
            retention_days=settings.auth_retention_days,
            daily_quota=settings.auth_daily_quota,
            rate_limit_minute=settings.auth_rate_limit_minute,
            rate_limit_hour=settings.auth_rate_limit_hour,
        )


_COLUMNS = ("id, account_id, name, slug, environment, retention_days, daily_quota,"
            " rate_limit_minute, rate_limit_hour, created_at, updated_at, dsn_id")


def _row(r: dict[str, Any]) -> Project:
    return Project(
        id=str(r["id"]), account_id=str(r["account_id"]), name=r["name"], slug=r["slug"],
        environment=r["environment"], retention_days=r["retention_days"],
        daily_quota=r["daily_quota"], rate_limit_minute=r["rate_limit_minute"],
        rate_limit_hour=r["rate_limit_hour"], created_at=r["created_at"],
        updated_at=r["updated_at"], dsn_id=r["dsn_id"],
    )


def slugify(name: str) -> str:
    """A slug derived from a project name: ``"My API!"`` → ``"my-api"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")


def check_slug(slug: str) -> str:
    """Return ``slug`` if it is valid.

    Raises:
        InvalidInputError: not 1-64 characters of a-z, 0-9 and '-'.
    """
    if not SLUG.match(slug):
        raise InvalidInputError(
            f"invalid project slug {slug!r}: use 1-64 lowercase letters, digits and '-'")
    return slug


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInputError(f"a project name must be 1-{MAX_NAME} characters")
    return name


def _check_environment(environment: str) -> str:
    environment = environment.strip()
    if not environment or len(environment) > MAX_ENVIRONMENT:
        raise InvalidInputError(
            f"a project environment must be 1-{MAX_ENVIRONMENT} characters, e.g. production")
    return environment


def _check_limits(**limits: int | None) -> None:
    for name, value in limits.items():
        if value is None:
            continue
        if name == "retention_days" and value < 1:
            raise InvalidInputError(f"retention_days must be at least 1, got {value}")
        if value < 0:
            raise InvalidInputError(f"{name} must be 0 or more, got {value}")
        if name != "daily_quota" and value > 2**31 - 1:
            raise InvalidInputError(f"{name} is too large: at most {2**31 - 1}")


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def create_project(
    conn: Conn,
    *,
    account_id: str,
    name: str,
    slug: str | None = None,
    environment: str = "production",
    defaults: ProjectDefaults | None = None,
) -> Project:
    """Create a project owned by ``account_id``.

    Args:
        slug: Defaults to one derived from ``name``.
        defaults: Limits to start with; ``ProjectDefaults()`` when None.

    Raises:
        InvalidInputError: bad name, slug or environment.
        ConflictError: the slug is taken.
        NotFoundError: no such account.
    """
    name = _check_name(name)
    slug = check_slug(slugify(name) if slug is None else slug)
    environment = _check_environment(environment)
    limits = defaults or ProjectDefaults()
    owner = _as_uuid(account_id)
    if owner is None:
        raise NotFoundError(f"no account with id {account_id!r}")
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"INSERT INTO projects (id, account_id, name, slug, environment, retention_days,"
                f" daily_quota, rate_limit_minute, rate_limit_hour)"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (uuid7(), owner, name, slug, environment, limits.retention_days,
                 limits.daily_quota, limits.rate_limit_minute, limits.rate_limit_hour),
            )
            row = await cur.fetchone()
    except psycopg.errors.UniqueViolation:
        raise ConflictError(f"project slug {slug!r} is taken: choose another --slug") from None
    except psycopg.errors.ForeignKeyViolation:
        raise NotFoundError(f"no account with id {account_id}: see `ledger accounts list`"
                            ) from None
    assert row is not None
    return _row(row)


async def list_projects(conn: Conn, account_id: str | None = None) -> list[Project]:
    """Every project (operators), or those of one account, by slug."""
    async with conn.cursor(row_factory=dict_row) as cur:
        if account_id is None:
            await cur.execute(f"SELECT {_COLUMNS} FROM projects ORDER BY slug")
        else:
            owner = _as_uuid(account_id)
            if owner is None:
                return []
            await cur.execute(f"SELECT {_COLUMNS} FROM projects WHERE account_id = %s"
                              " ORDER BY slug", (owner,))
        return [_row(r) for r in await cur.fetchall()]


async def get_project(conn: Conn, ref: str) -> Project:
    """The project with this id or slug.

    Raises:
        NotFoundError: no such project.
    """
    ref = ref.strip()
    pid = _as_uuid(ref)
    async with conn.cursor(row_factory=dict_row) as cur:
        if pid is not None:
            await cur.execute(f"SELECT {_COLUMNS} FROM projects WHERE id = %s", (pid,))
        else:
            await cur.execute(f"SELECT {_COLUMNS} FROM projects WHERE slug = %s", (ref,))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no project {ref!r}: see `ledger projects list`")
    return _row(row)


async def update_project(
    conn: Conn,
    redis: aioredis.Redis | None,
    project_id: str,
    *,
    name: str | None = None,
    environment: str | None = None,
    retention_days: int | None = None,
    daily_quota: int | None = None,
    rate_limit_minute: int | None = None,
    rate_limit_hour: int | None = None,
) -> Project:
    """Change a project; None leaves a field as it is.

    Cached key identities carry the project's limits, so the project's keys are dropped from
    every cache (``redis``) and re-validated on their next use.

    Raises:
        NotFoundError: no such project.
        InvalidInputError: a bad value.
    """
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = _check_name(name)
    if environment is not None:
        changes["environment"] = _check_environment(environment)
    limits = {"retention_days": retention_days, "daily_quota": daily_quota,
              "rate_limit_minute": rate_limit_minute, "rate_limit_hour": rate_limit_hour}
    _check_limits(**limits)
    changes.update({k: v for k, v in limits.items() if v is not None})
    project = await get_project(conn, project_id)
    if not changes:
        return project
    assignments = ", ".join(f"{column} = %({column})s" for column in changes)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"UPDATE projects SET {assignments}, updated_at = now() WHERE id = %(id)s"
            f" RETURNING {_COLUMNS}", {**changes, "id": uuid.UUID(project.id)})
        row = await cur.fetchone()
    if row is None:  # deleted between the two statements
        raise NotFoundError(f"no project {project_id!r}: see `ledger projects list`")
    if redis is not None:
        keys = await api_keys.list_keys(conn, project.id)
        await api_keys.forget_keys(redis, [k.key_id for k in keys if k.status == "active"])
    return _row(row)
