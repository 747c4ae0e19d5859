"""Projects and their API keys, for a logged-in account (DESIGN §5). API keys get 403.

Every route acts only on projects the account owns; another account's project or key is a 404
(``ledger.daemons.gateway.edge.access``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from redis.exceptions import RedisError
from starlette.responses import Response

from ledger.core import sentry
from ledger.daemons.gateway.edge.access import RequireAccount, account_projects, owned_project
from ledger.daemons.gateway.edge.account_sessions import AccountPrincipal
from ledger.daemons.gateway.routes.responses import json_response, model_body
from ledger.daemons.gateway.schemas.accounts import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    ProjectCreate,
    ProjectList,
    ProjectOut,
    ProjectPatch,
    QuotaOut,
)
from ledger.daemons.gateway.schemas.ingest import error_doc
from ledger.daemons.gateway.state import Gateway
from ledger.errors import UnavailableError
from ledger.queue import names

router = APIRouter(prefix="/api/v1", tags=["projects"])
require_account = RequireAccount()
KEY_WARNING = "Store this key now: it is shown only once and cannot be recovered."


RESPONSES: dict[int | str, dict[str, Any]] = {
    400: error_doc("A field is invalid"),
    401: error_doc("Missing, expired or logged-out access token"),
    403: error_doc("An API key was sent: these routes need an account"),
    404: error_doc("Not found among the account's projects"),
}


@router.get("/projects", response_model=ProjectList, responses=RESPONSES)
async def list_projects(request: Request,
                        account: AccountPrincipal = Depends(require_account)) -> Response:
    """The account's projects."""
    projects = await account_projects(request.app.state.gateway, account.account_id)
    return json_response({"projects": [model_body(p) for p in projects]})


@router.post("/projects", status_code=201, response_model=ProjectOut,
             responses={**RESPONSES, 409: error_doc("The slug is taken")})
async def create_project(request: Request, body: ProjectCreate,
                         account: AccountPrincipal = Depends(require_account)) -> Response:
    """Create a project owned by the account."""
    gateway: Gateway = request.app.state.gateway
    created = await gateway.auth.create_project(account.account_id, body.name,
                                                slug=body.slug or "",
                                                environment=body.environment)
    return json_response(model_body(created), 201)


@router.get("/projects/{ref}", response_model=ProjectOut, responses=RESPONSES)
async def get_project(request: Request, ref: str,
                      account: AccountPrincipal = Depends(require_account)) -> Response:
    """One of the account's projects, by slug (or id)."""
    project = await owned_project(request.app.state.gateway, account, ref)
    return json_response(model_body(project))


@router.patch("/projects/{ref}", response_model=ProjectOut, responses=RESPONSES)
async def update_project(request: Request, ref: str, body: ProjectPatch,
                         account: AccountPrincipal = Depends(require_account)) -> Response:
    """Change a project's name, environment, retention, daily quota or rate limits."""
    gateway: Gateway = request.app.state.gateway
    project = await owned_project(gateway, account, ref)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    updated = await gateway.auth.update_project(project.id, **changes)
    return json_response(model_body(updated))


@router.get("/projects/{ref}/quota", response_model=QuotaOut, responses=RESPONSES)
async def get_quota(request: Request, ref: str,
                    account: AccountPrincipal = Depends(require_account)) -> Response:
    """Logs accepted today (UTC) against the project's daily quota."""
    gateway: Gateway = request.app.state.gateway
    project = await owned_project(gateway, account, ref)
    now = datetime.now(UTC)
    try:
        raw = await gateway.redis.get(names.daily_quota(project.id, now.strftime("%Y%m%d")))
    except (RedisError, OSError) as exc:
        raise UnavailableError("cannot read today's usage right now", retry_after=5) from exc
    used = int(raw or 0)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return json_response({
        "project_id": project.id, "daily_quota": project.daily_quota, "used_today": used,
        "remaining_today": max(project.daily_quota - used, 0),
        "resets_at": midnight.isoformat(),
    })


@router.post("/projects/{ref}/api-keys", status_code=201, response_model=ApiKeyCreated,
             responses={**RESPONSES,
                        409: error_doc("The project has 100 active keys: revoke one first")})
async def create_key(request: Request, ref: str, body: ApiKeyCreate,
                     account: AccountPrincipal = Depends(require_account)) -> Response:
    """Create an API key for the project; the full key is in this answer only."""
    gateway: Gateway = request.app.state.gateway
    project = await owned_project(gateway, account, ref)
    created = await gateway.auth.create_api_key(
        project.id, body.name, body.scopes, rate_limit_minute=body.rate_limit_minute,
        rate_limit_hour=body.rate_limit_hour)
    return json_response({"key_id": created.key.key_id, "full_key": created.full_key,
                          "key_prefix": created.key.key_prefix, "warning": KEY_WARNING,
                          "key": model_body(created.key),
                          "dsn": sentry.dsn(created.full_key, request.url.netloc,
                                            project.dsn_id, request.url.scheme)}, 201)


@router.get("/projects/{ref}/api-keys", response_model=ApiKeyList, responses=RESPONSES)
async def list_keys(request: Request, ref: str,
                    account: AccountPrincipal = Depends(require_account)) -> Response:
    """The project's API keys, active and revoked (never their secrets)."""
    gateway: Gateway = request.app.state.gateway
    project = await owned_project(gateway, account, ref)
    found = await gateway.auth.list_api_keys(project.id)
    return json_response({"api_keys": [model_body(k) for k in found]})


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut,
               responses={**RESPONSES, 404: error_doc("No such key among the account's projects")})
async def revoke_key(request: Request, key_id: str,
                     account: AccountPrincipal = Depends(require_account)) -> Response:
    """Revoke a key of one of the account's projects; it stops working within a second."""
    gateway: Gateway = request.app.state.gateway
    revoked = await gateway.auth.revoke_api_key(key_id, account_id=account.account_id)
    return json_response(model_body(revoked))
