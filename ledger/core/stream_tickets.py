"""Stream tickets: how a browser's ``EventSource`` authenticates to the live stream (DESIGN §12).

``EventSource`` cannot send an ``Authorization`` header, and a long-lived credential in a URL
ends up in history, proxies' logs and screenshots. So the browser view trades its access token
(``POST /api/v1/live/tickets``) for a ticket that is:

* **short-lived** — valid ``TICKET_SECONDS`` (60 s) after it is minted, and only to *open* a
  stream (an open stream is not cut when the ticket expires);
* **single-use** — the gateway records its nonce in Redis when a stream opens with it, so a
  ticket copied out of a URL is worthless once used;
* **read-only and single-project** — it names one project of the account and is accepted only
  by ``GET /api/v1/notifications/stream``, nowhere else;
* **bound to the session** — a logged-out session's tickets are refused like its tokens.

Format: ``lst1.<payload>.<mac>``, both parts base64url without padding; the payload is JSON
``{"a": account, "s": session, "p": project, "e": expiry (unix s), "n": nonce}``; the MAC is
HMAC-SHA256 over ``lst1.<payload>`` with a key derived from ``LEDGER_JWT_SECRET`` (a separate
key, so that a ticket can never pass for an access token or the reverse).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from ledger.core.sessions import signing_secret
from ledger.errors import AuthenticationError

PREFIX = "lst1"
TICKET_SECONDS = 60
MAX_TICKET_CHARS = 600
_EXPIRED = "the stream ticket has expired: mint a new one (POST /api/v1/live/tickets)"
_INVALID = "the stream ticket is not valid: mint a new one (POST /api/v1/live/tickets)"


@dataclass(frozen=True)
class Ticket:
    """What a valid ticket says."""

    account_id: str
    session_id: str
    project_id: str
    expires_at: datetime
    nonce: str


def _key(secret: str | None) -> bytes:
    return hmac.new(signing_secret(secret), b"ledger stream ticket v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str | None, signed: str) -> str:
    return _b64(hmac.new(_key(secret), signed.encode(), hashlib.sha256).digest())


def mint(secret: str | None, *, account_id: str, session_id: str, project_id: str,
         now: datetime | None = None, seconds: int = TICKET_SECONDS) -> tuple[str, datetime]:
    """A new ticket for one project of an account's session, and when it expires."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    expires = int(now.timestamp()) + seconds
    payload = _b64(orjson.dumps({"a": account_id, "s": session_id, "p": project_id,
                                 "e": expires, "n": secrets.token_urlsafe(12)}))
    signed = f"{PREFIX}.{payload}"
    return f"{signed}.{_mac(secret, signed)}", datetime.fromtimestamp(expires, UTC)


def verify(secret: str | None, ticket: str, now: datetime | None = None) -> Ticket:
    """Check a ticket's MAC, expiry and shape (not whether it was used: the caller does).

    Raises:
        AuthenticationError: tampered with, malformed or expired.
    """
    parts = ticket.strip().split(".")
    if len(ticket) > MAX_TICKET_CHARS or len(parts) != 3 or parts[0] != PREFIX:
        raise AuthenticationError(_INVALID)
    signed = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_mac(secret, signed), parts[2]):
        raise AuthenticationError(_INVALID)
    try:
        claims = orjson.loads(_unb64(parts[1]))
        found = Ticket(account_id=str(uuid.UUID(str(claims["a"]))),
                       session_id=str(uuid.UUID(str(claims["s"]))),
                       project_id=str(claims["p"]),
                       expires_at=datetime.fromtimestamp(int(claims["e"]), UTC),
                       nonce=str(claims["n"]))
    except (ValueError, TypeError, KeyError):
        raise AuthenticationError(_INVALID) from None
    if (now or datetime.now(UTC)) >= found.expires_at:
        raise AuthenticationError(_EXPIRED)
    return found
