"""The default account, project and API key that `ledger up` creates on its first run."""

from __future__ import annotations

import secrets
from typing import NamedTuple

from ledger.config import Settings
from ledger.core import accounts, api_keys, projects
from ledger.core.connections import auth_connections
from ledger.errors import ConflictError, NotFoundError

DEFAULT_EMAIL = "admin@ledger.local"
DEFAULT_SLUG = "default"
DEFAULT_PROJECT_NAME = "Default"
DEFAULT_ENVIRONMENT = "development"


class DefaultSetup(NamedTuple):
    """What `ledger up` prints. ``full_key`` and ``password`` are set only when just created."""

    account: accounts.Account
    project: projects.Project
    full_key: str | None
    password: str | None


async def ensure_default_setup(settings: Settings) -> DefaultSetup:
    """Create what is missing of the default account, project and key; return them.

    The first run creates ``admin@ledger.local`` with a random password, the project
    ``default`` and an API key, and returns the password and the key (shown once). Later runs
    return the existing account and project with ``full_key`` and ``password`` None — unless
    the default project has no active key left, in which case a new one is made.

    Raises:
        ConfigError: the auth database or Redis URL is unset.
        UnavailableError: either cannot be reached.
    """
    async with auth_connections(settings) as (conn, _redis):
        password: str | None = None
        try:
            account = await accounts.get_account_by_email(conn, DEFAULT_EMAIL)
        except NotFoundError:
            password = secrets.token_urlsafe(12)
            try:
                account = await accounts.register(conn, DEFAULT_EMAIL, password, "Admin")
            except ConflictError:  # a concurrent first run won
                account = await accounts.get_account_by_email(conn, DEFAULT_EMAIL)
                password = None
        try:
            project = await projects.get_project(conn, DEFAULT_SLUG)
        except NotFoundError:
            try:
                project = await projects.create_project(
                    conn, account_id=account.id, name=DEFAULT_PROJECT_NAME, slug=DEFAULT_SLUG,
                    environment=DEFAULT_ENVIRONMENT,
                    defaults=projects.ProjectDefaults.from_settings(settings))
            except ConflictError:
                project = await projects.get_project(conn, DEFAULT_SLUG)
        full_key: str | None = None
        keys = await api_keys.list_keys(conn, project.id)
        if not any(k.status == "active" for k in keys):
            _, full_key = await api_keys.create_key(conn, project.id, name="default")
        return DefaultSetup(account, project, full_key, password)
