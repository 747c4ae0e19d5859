"""Account callers: ``Authorization: Bearer <access token>`` verified in the gateway.

The JWT is checked locally (signature, expiry) plus one Redis lookup that says whether its
session was logged out since; no RPC. ``RequireAccount`` is the dependency of routes that only
an account may call (projects, keys, the account itself): API keys are refused there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from ledger.core import sessions
from ledger.core.rpc_models import IssuedSession
from ledger.daemons.gateway.routes.responses import model_body
from ledger.daemons.gateway.state import Gateway
from ledger.errors import AuthenticationError, UnavailableError


@dataclass(frozen=True, slots=True)
class AccountPrincipal:
    """A caller authenticated by an account access token: reads every project it owns."""

    claims: sessions.AccessClaims

    @property
    def account_id(self) -> str:
        return self.claims.account_id

    @property
    def session_id(self) -> str:
        return self.claims.session_id

    def allows(self, scope: str) -> bool:
        # An account may do everything on its own projects; ownership is checked per route.
        return True

    def rate_headers(self) -> dict[str, str]:
        return {}


async def authenticate_account(gateway: Gateway, token: str) -> AccountPrincipal:
    """Verify an access token and that its session is still open.

    Raises:
        AuthenticationError: expired, invalid or logged-out token (401).
        UnavailableError: Redis cannot say whether the session was revoked (503).
    """
    claims = sessions.decode_access_token(gateway.settings.jwt_secret, token)
    try:
        revoked = await sessions.is_revoked(gateway.redis, claims)
    except (RedisError, OSError) as exc:
        raise UnavailableError("cannot check the session right now; retry shortly",
                               retry_after=5) from exc
    if revoked:
        raise AuthenticationError(
            "this session was logged out: log in again (POST /api/v1/accounts/login)")
    return AccountPrincipal(claims)


def token_body(gateway: Gateway, session: IssuedSession) -> dict[str, Any]:
    """The answer of register, login and refresh: a new access token and refresh token."""
    account = session.account
    access, expires = sessions.issue_access_token(
        gateway.settings.jwt_secret, account_id=account.id, email=account.email,
        session_id=session.session_id)
    return {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": sessions.ACCESS_TOKEN_SECONDS,
        "access_expires_at": expires.isoformat(),
        "refresh_token": session.refresh_token,
        "refresh_expires_at": session.refresh_expires_at,
        "account": model_body(account),
    }
