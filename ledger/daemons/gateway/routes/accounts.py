"""Accounts: register, log in, refresh, log out, and the account itself (DESIGN §4, §5).

Passwords are checked by auth (bcrypt); sessions (rotating refresh tokens) live in the auth
database; the access JWT is signed here with ``LEDGER_JWT_SECRET``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ledger.daemons.gateway.edge import throttles
from ledger.daemons.gateway.edge.access import RequireAccount
from ledger.daemons.gateway.edge.account_sessions import AccountPrincipal, token_body
from ledger.daemons.gateway.routes.responses import json_response, model_body
from ledger.daemons.gateway.schemas.accounts import (
    AccountOut,
    LoginRequest,
    PasswordChangeRequest,
    RefreshRequest,
    RegisterRequest,
    RenameRequest,
    TokenResponse,
)
from ledger.daemons.gateway.schemas.ingest import error_doc
from ledger.daemons.gateway.state import Gateway
from ledger.errors import AuthenticationError

router = APIRouter(prefix="/api/v1/accounts", tags=["accounts"])
require_account = RequireAccount()


_ACCOUNT_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: error_doc("Missing, expired or logged-out access token"),
    403: error_doc("An API key was sent: these routes need an account"),
}


async def _start_session(gateway: Gateway, account_id: str) -> dict[str, Any]:
    return token_body(gateway, await gateway.auth.create_session(account_id))


@router.post("/register", status_code=201, response_model=TokenResponse,
             responses={400: error_doc("Invalid email or too short a password"),
                        409: error_doc("An account with this email exists")})
async def register(request: Request, body: RegisterRequest) -> Response:
    """Create an account and log it in."""
    gateway: Gateway = request.app.state.gateway
    created = await gateway.auth.register_account(body.email, body.password, body.name)
    return json_response(await _start_session(gateway, created.id), 201)


@router.post("/login", response_model=TokenResponse,
             responses={401: error_doc("Wrong email or password"),
                        429: error_doc("Too many failed logins for this email or from"
                                       " this address")})
async def login(request: Request, body: LoginRequest) -> Response:
    """Exchange email and password for an access token (15 min) and a refresh token (7 days).

    After 10 failures for one email, or 50 from one address, within 15 minutes, logins are
    refused with 429 and ``Retry-After`` until the window ends.
    """
    gateway: Gateway = request.app.state.gateway
    client = request.client.host if request.client is not None else "unknown"
    await throttles.check(gateway.redis, body.email, client)
    try:
        found = await gateway.auth.login_account(body.email, body.password)
    except AuthenticationError:
        await throttles.record_failure(gateway.redis, body.email, client)
        raise
    await throttles.record_success(gateway.redis, body.email)
    return json_response(await _start_session(gateway, found.id))


@router.post("/refresh", response_model=TokenResponse,
             responses={401: error_doc("Unknown, expired, revoked or already used refresh token")})
async def refresh(request: Request, body: RefreshRequest) -> Response:
    """Exchange a refresh token for new tokens. Each refresh token works once."""
    gateway: Gateway = request.app.state.gateway
    rotated = await gateway.auth.refresh_session(body.refresh_token)
    return json_response(token_body(gateway, rotated))


@router.post("/logout", status_code=204, response_class=Response,
             responses={401: error_doc("Unknown refresh token")})
async def logout(request: Request, body: RefreshRequest) -> Response:
    """End the session of this refresh token; its access tokens stop working at once."""
    gateway: Gateway = request.app.state.gateway
    await gateway.auth.revoke_session(body.refresh_token)
    return Response(status_code=204)


@router.get("/me", response_model=AccountOut, responses=_ACCOUNT_RESPONSES)
async def me(request: Request,
             account: AccountPrincipal = Depends(require_account)) -> Response:
    """The logged-in account."""
    gateway: Gateway = request.app.state.gateway
    return json_response(model_body(await gateway.auth.get_account(account.account_id)))


@router.patch("/me/name", response_model=AccountOut,
              responses={400: error_doc("Name too long"), **_ACCOUNT_RESPONSES})
async def rename(request: Request, body: RenameRequest,
                 account: AccountPrincipal = Depends(require_account)) -> Response:
    """Change the account's display name."""
    gateway: Gateway = request.app.state.gateway
    renamed = await gateway.auth.rename_account(account.account_id, body.name)
    return json_response(model_body(renamed))


@router.post("/me/password", response_model=TokenResponse,
             responses={400: error_doc("New password too short"),
                        401: error_doc("Current password wrong, or no valid access token"),
                        403: _ACCOUNT_RESPONSES[403]})
async def change_password(request: Request, body: PasswordChangeRequest,
                          account: AccountPrincipal = Depends(require_account)) -> Response:
    """Change the password. Every session ends; the answer carries a fresh one."""
    gateway: Gateway = request.app.state.gateway
    await gateway.auth.change_account_password(account.account_id, body.current_password,
                                               body.new_password)
    await gateway.auth.revoke_account_sessions(account.account_id)
    return json_response(await _start_session(gateway, account.account_id))
