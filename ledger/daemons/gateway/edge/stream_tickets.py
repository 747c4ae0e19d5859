"""The live stream's principal: the usual credentials, or a stream ticket (DESIGN §12).

``StreamPrincipal`` is the dependency of ``GET /notifications/stream`` only: it accepts what
``RequirePrincipal("read")`` accepts and, when no header credentials are sent, a ``ticket``
query parameter (``ledger.core.stream_tickets``). A ticket principal is an account narrowed to
the ticket's project; the route refuses any other project with a 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Query, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials
from redis.exceptions import RedisError

from ledger import bus
from ledger.core import sessions, stream_tickets
from ledger.daemons.gateway.edge.access import not_found
from ledger.daemons.gateway.edge.account_sessions import AccountPrincipal
from ledger.daemons.gateway.edge.principal import (
    Principal,
    RequirePrincipal,
    api_key_header,
    bearer,
)
from ledger.daemons.gateway.state import Gateway
from ledger.errors import AuthenticationError, UnavailableError


@dataclass(frozen=True, slots=True)
class TicketPrincipal(AccountPrincipal):
    """An account that opened the stream with a ticket: it follows one project only."""

    project_id: str = ""

    def narrow(self, wanted: str | None) -> str:
        """The project to follow: the ticket's; naming another one is a 404."""
        if wanted and wanted != self.project_id:
            raise not_found(wanted)
        return self.project_id


async def ticket_principal(gateway: Gateway, raw: str) -> TicketPrincipal:
    """Verify a ticket, that its session is open, and spend it (one stream per ticket).

    Raises:
        AuthenticationError: invalid, expired, already used, or its session logged out (401).
        UnavailableError: Redis cannot record the use (503).
    """
    ticket = stream_tickets.verify(gateway.settings.jwt_secret, raw)
    claims = sessions.AccessClaims(account_id=ticket.account_id, email="",
                                   session_id=ticket.session_id,
                                   issued_at=ticket.expires_at, expires_at=ticket.expires_at)
    try:
        if await sessions.is_revoked(gateway.redis, claims):
            raise AuthenticationError("this session was logged out: sign in again")
        first_use = await gateway.redis.set(
            bus.stream_ticket_used(ticket.account_id, ticket.nonce), b"1", nx=True,
            ex=stream_tickets.TICKET_SECONDS + 5)
    except (RedisError, OSError) as exc:
        raise UnavailableError("cannot check the stream ticket right now; retry shortly",
                               retry_after=5) from exc
    if not first_use:
        raise AuthenticationError("this stream ticket was already used: mint a new one"
                                  " (POST /api/v1/live/tickets)")
    return TicketPrincipal(claims, ticket.project_id)


class StreamPrincipal:
    """Dependency: header credentials with the ``read`` scope, or a stream ``ticket``."""

    def __init__(self) -> None:
        self.headers = RequirePrincipal("read")

    async def __call__(
        self,
        request: Request,
        response: Response,
        api_key: str | None = Security(api_key_header),
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
        ticket: str | None = Query(
            None, description="A stream ticket (POST /api/v1/live/tickets) for clients that"
                              " cannot send headers, such as a browser's EventSource."),
    ) -> Principal:
        if ticket and not api_key and credentials is None:
            return await ticket_principal(request.app.state.gateway, ticket)
        return await self.headers(request, response, api_key, credentials)
