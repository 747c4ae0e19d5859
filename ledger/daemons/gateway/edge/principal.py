"""Who is calling: principals resolved from request headers, as FastAPI dependencies.

- ``X-API-Key: ledger_…`` or ``Authorization: Bearer ledger_…`` → ``ApiKeyPrincipal``.
- ``Authorization: Bearer <jwt>`` → an account principal, resolved by ``account_principal``
  (the hook where account tokens plug in; until then such a bearer is refused with 401).

Routes declare what they need::

    @router.post("/ingest/batch")
    async def batch(principal: ApiKeyPrincipal = Depends(RequireKey("ingest"))): ...

    @router.get("/logs")
    async def logs(principal: Principal = Depends(RequirePrincipal("read"))): ...

A key principal has passed its rate limit (its ``X-RateLimit-*`` headers are set on the
response; a handler that returns its own ``Response`` copies ``principal.rate_headers()``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request, Response, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from ledger.core.api_keys import KeyIdentity
from ledger.daemons.gateway.edge.account_sessions import AccountPrincipal, authenticate_account
from ledger.daemons.gateway.edge.client_address import client_address
from ledger.daemons.gateway.edge.rate_limits import RateLimitState, over_limit_error
from ledger.daemons.gateway.schemas.ingest import error_doc
from ledger.daemons.gateway.state import Gateway
from ledger.errors import AuthenticationError, PermissionDeniedError

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="ApiKey",
    description="A project API key, `ledger_<key id>_<secret>`.")
bearer = HTTPBearer(
    auto_error=False, scheme_name="Bearer",
    description="`Bearer ledger_…` (an API key) or `Bearer <access token>` (an account).")

KEY_PREFIX = "ledger_"
MISSING = ("missing credentials: send your API key in the X-API-Key header"
           " (or as Authorization: Bearer ledger_…)")


@dataclass(frozen=True, slots=True)
class ApiKeyPrincipal:
    """A caller authenticated by a project API key."""

    identity: KeyIdentity
    rate_limit: RateLimitState | None = None

    @property
    def project_id(self) -> str:
        return self.identity.project_id

    def allows(self, scope: str) -> bool:
        return self.identity.allows(scope)

    def rate_headers(self) -> dict[str, str]:
        return self.rate_limit.headers() if self.rate_limit is not None else {}

    def raw_rate_headers(self) -> list[tuple[bytes, bytes]]:
        """``rate_headers()`` as ASGI header bytes (for ``responses.json_bytes_response``)."""
        return self.rate_limit.raw_headers() if self.rate_limit is not None else []


Principal = ApiKeyPrincipal | AccountPrincipal
P = TypeVar("P", ApiKeyPrincipal, Principal)


async def account_principal(gateway: Gateway, token: str, scope: str | None) -> Principal:
    """The principal of an account access token (``Authorization: Bearer <jwt>``).

    Raises:
        AuthenticationError: expired, invalid or logged-out token.
    """
    return await authenticate_account(gateway, token)


async def authenticate_key(request: Request, response: Response | None, full_key: str,
                           scope: str | None) -> ApiKeyPrincipal:
    """Validate ``full_key``, check ``scope`` and count the request against the key's limits.

    Raises:
        AuthenticationError (401), PermissionDeniedError (403), RateLimitedError (429),
        UnavailableError (503).
    """
    gateway: Gateway = request.app.state.gateway
    identity = await gateway.keys.validate(full_key, functools.partial(client_address, request))
    if scope is not None and not identity.allows(scope):
        raise PermissionDeniedError(
            f"this API key lacks the {scope!r} scope: use a key created with that scope"
            f" (`ledger keys create --scope {scope}`)")
    state = await gateway.limiter.hit(identity.key_id, identity.rate_limit_minute,
                                      identity.rate_limit_hour)
    request.state.rate_limit = state  # the error handlers add the headers to 4xx answers
    if state.retry_after is not None:
        raise over_limit_error(state)
    if response is not None:
        response.headers.update(state.headers())
    return ApiKeyPrincipal(identity, state)


def _presented_key(api_key: str | None, credentials: HTTPAuthorizationCredentials | None,
                   ) -> tuple[str | None, str | None]:
    """``(api key, account token)`` from the headers; at most one of them is set."""
    if api_key:
        return api_key.strip(), None
    if credentials is not None and credentials.credentials:
        token = credentials.credentials.strip()
        return (token, None) if token.startswith(KEY_PREFIX) else (None, token)
    return None, None


def _key_or_error(full_key: str | None, token: str | None) -> str:
    if full_key is None:
        if token is not None:
            raise AuthenticationError("this route needs an API key (ledger_…), not an"
                                      " account access token")
        raise AuthenticationError(MISSING)
    return full_key


async def require_key(request: Request, scope: str | None) -> ApiKeyPrincipal:
    """``RequireKey(scope)`` for a plain Starlette route: same headers, same errors.

    Reads the headers as ``api_key_header`` and ``bearer`` do, without FastAPI's dependency
    machinery (a measurable share of a single-log request).
    """
    # One pass over the raw headers: ``request.headers.get`` scans them once per name and
    # raises (and catches) a KeyError for an absent one, which Authorization mostly is
    # (issue 17: a few % of the gateway's single-log CPU). First occurrence wins, as there.
    api_key: str | None = None
    authorization: str | None = None
    for name, value in request.scope["headers"]:
        if name == b"x-api-key":
            if api_key is None:
                api_key = value.decode("latin-1")
        elif name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
    api_key = api_key or None
    credentials: HTTPAuthorizationCredentials | None = None
    if authorization:
        scheme, param = get_authorization_scheme_param(authorization)
        if scheme and param and scheme.lower() == "bearer":
            credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=param)
    full_key = _key_or_error(*_presented_key(api_key, credentials))
    return await authenticate_key(request, None, full_key, scope)


class _RequireCredentials(Generic[P]):
    """A dependency reading the credentials of ``X-API-Key`` / ``Authorization: Bearer``.

    The two headers are declared once here (for OpenAPI's security schemes); subclasses say
    which callers they accept in ``principal``.
    """

    def __init__(self, scope: str | None) -> None:
        self.scope = scope

    async def __call__(
        self,
        request: Request,
        response: Response,
        api_key: str | None = Security(api_key_header),
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> P:
        full_key, token = _presented_key(api_key, credentials)
        return await self.principal(request, response, full_key, token)

    async def principal(self, request: Request, response: Response, full_key: str | None,
                        token: str | None) -> P:
        raise NotImplementedError


class RequireKey(_RequireCredentials[ApiKeyPrincipal]):
    """Dependency: the caller must present an API key carrying ``scope`` (None: any scope)."""

    async def principal(self, request: Request, response: Response, full_key: str | None,
                        token: str | None) -> ApiKeyPrincipal:
        return await authenticate_key(request, response, _key_or_error(full_key, token),
                                      self.scope)


class RequirePrincipal(_RequireCredentials[Principal]):
    """Dependency: an API key carrying ``scope``, or an account (see ``account_principal``)."""

    async def principal(self, request: Request, response: Response, full_key: str | None,
                        token: str | None) -> Principal:
        if full_key is not None:
            return await authenticate_key(request, response, full_key, self.scope)
        if token is not None:
            return await account_principal(request.app.state.gateway, token, self.scope)
        raise AuthenticationError(MISSING)


#: OpenAPI ``responses`` of any route behind a key (spread into the route's ``responses``).
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: error_doc("Missing, malformed, unknown or revoked credentials"),
    403: error_doc("The key lacks the scope this route needs"),
    429: error_doc("Over the key's rate limit (see Retry-After and X-RateLimit-*)"),
    503: error_doc("A daemon the gateway needs is unavailable; retry after Retry-After"),
}
