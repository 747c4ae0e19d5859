"""Which projects a caller may touch (no IDOR): the one rule every read and manage route uses.

* An API key reads only its own project. Naming another project is a 404, exactly like a
  project that does not exist: the answer never tells that an id exists elsewhere.
* An account reads and manages only the projects it owns (asked of auth on each request, so a
  project created a moment ago is visible at once).
* API keys never manage accounts, projects or keys (``RequireAccount``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from ledger.core.projects import Project
from ledger.daemons.gateway.edge.account_sessions import AccountPrincipal, authenticate_account
from ledger.daemons.gateway.edge.principal import KEY_PREFIX, ApiKeyPrincipal, Principal, bearer
from ledger.daemons.gateway.state import Gateway
from ledger.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)

MAX_REF_CHARS = 100


@dataclass(frozen=True)
class ReadableProject:
    """A project the caller may read, with the retention that bounds its default window."""

    id: str
    retention_days: int


class RequireAccount:
    """Dependency: the caller must be an account (an access token), never an API key."""

    async def __call__(
        self,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> AccountPrincipal:
        token = credentials.credentials.strip() if credentials is not None else ""
        if request.headers.get("x-api-key") or token.startswith(KEY_PREFIX):
            raise PermissionDeniedError(
                "API keys cannot manage accounts, projects or keys: log in"
                " (POST /api/v1/accounts/login) and send Authorization: Bearer <access_token>")
        if not token:
            raise AuthenticationError(
                "missing credentials: send Authorization: Bearer <access_token>"
                " (from POST /api/v1/accounts/login)")
        return await authenticate_account(request.app.state.gateway, token)


def not_found(ref: str) -> NotFoundError:
    """The one answer for a project that does not exist or is not the caller's."""
    return NotFoundError(f"project {ref[:MAX_REF_CHARS]!r} not found among your projects")


async def account_projects(gateway: Gateway, account_id: str) -> list[Project]:
    """Every project the account owns."""
    return await gateway.auth.list_projects(account_id)


async def owned_project(gateway: Gateway, account: AccountPrincipal,
                        ref: str) -> Project:
    """The account's project with id or slug ``ref``, or 404 (also when another owns it)."""
    ref = ref.strip()
    if not ref or len(ref) > MAX_REF_CHARS:
        raise not_found(ref)
    try:
        project = await gateway.auth.get_project(ref)
    except (NotFoundError, InvalidInputError):
        raise not_found(ref) from None
    if project.account_id != account.account_id:
        raise not_found(ref)
    return project


async def readable_project(gateway: Gateway, principal: Principal,
                           ref: str | None) -> ReadableProject:
    """The project a read targets: ``project_id`` (id or slug), checked against the caller.

    An API key implies its project; an account with a single project may omit it.

    Raises:
        NotFoundError: not a project the caller may read.
        InvalidInputError: an account with several projects did not say which.
    """
    ref = (ref or "").strip() or None
    if isinstance(principal, ApiKeyPrincipal):
        identity = principal.identity
        if ref is not None and ref not in (identity.project_id, identity.project_slug):
            raise not_found(ref)
        return ReadableProject(identity.project_id, identity.retention_days)
    if ref is not None:
        project = await owned_project(gateway, principal, ref)
        return ReadableProject(project.id, project.retention_days)
    projects = await account_projects(gateway, principal.account_id)
    if len(projects) == 1:
        return ReadableProject(projects[0].id, projects[0].retention_days)
    if not projects:
        raise NotFoundError("your account has no project yet: create one with"
                            " POST /api/v1/projects")
    slugs = ", ".join(p.slug for p in projects[:10])
    raise InvalidInputError(f"project_id is required: your account has {len(projects)} projects"
                            f" ({slugs}); pass project_id=<id or slug>")


async def readable_project_ids(gateway: Gateway, principal: Principal) -> list[str]:
    """Every project id the caller may read (an API key: one; an account: all it owns)."""
    if isinstance(principal, ApiKeyPrincipal):
        return [principal.project_id]
    return [p.id for p in await account_projects(gateway, principal.account_id)]
