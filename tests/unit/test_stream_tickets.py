"""Stream tickets: minted for one project of one session, short-lived, tamper-evident."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ledger.core import sessions, stream_tickets
from ledger.errors import AuthenticationError

SECRET = "s" * 40
ACCOUNT, SESSION = str(uuid.uuid4()), str(uuid.uuid4())


def mint(**overrides: object) -> str:
    args: dict[str, object] = {"account_id": ACCOUNT, "session_id": SESSION,
                               "project_id": "p-1", **overrides}
    ticket, _ = stream_tickets.mint(SECRET, **args)  # type: ignore[arg-type]
    return ticket


def test_a_ticket_says_whose_stream_of_which_project_until_when() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    ticket, expires = stream_tickets.mint(SECRET, account_id=ACCOUNT, session_id=SESSION,
                                          project_id="p-1", now=now)
    assert expires == now + timedelta(seconds=60)
    found = stream_tickets.verify(SECRET, ticket, now=now + timedelta(seconds=59))
    assert (found.account_id, found.session_id, found.project_id) == (ACCOUNT, SESSION, "p-1")
    assert found.expires_at == expires and found.nonce


def test_two_tickets_differ_so_that_each_is_spent_once() -> None:
    first, second = mint(), mint()
    assert first != second
    nonces = {stream_tickets.verify(SECRET, t).nonce for t in (first, second)}
    assert len(nonces) == 2


def test_an_expired_ticket_is_refused_saying_so() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    ticket, _ = stream_tickets.mint(SECRET, account_id=ACCOUNT, session_id=SESSION,
                                    project_id="p-1", now=now)
    with pytest.raises(AuthenticationError, match="expired"):
        stream_tickets.verify(SECRET, ticket, now=now + timedelta(seconds=60))


def _swap_project(ticket: str, project: str) -> str:
    prefix, payload, mac = ticket.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["p"] = project
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    return f"{prefix}.{forged}.{mac}"


@pytest.mark.parametrize("broken", [
    lambda t: _swap_project(t, "someone-elses"),
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: t.replace("lst1.", "lst2.", 1),
    lambda t: "lst1.e30." + t.rsplit(".", 1)[1],
    lambda t: "not a ticket",
    lambda t: t + "." + "x" * 700,
])
def test_a_tampered_or_malformed_ticket_is_refused(broken: object) -> None:
    with pytest.raises(AuthenticationError, match="not valid"):
        stream_tickets.verify(SECRET, broken(mint()))  # type: ignore[operator]


def test_another_secret_does_not_accept_it_and_it_is_no_access_token() -> None:
    ticket = mint()
    with pytest.raises(AuthenticationError):
        stream_tickets.verify("t" * 40, ticket)
    with pytest.raises(AuthenticationError):
        sessions.decode_access_token(SECRET, ticket)
    token, _ = sessions.issue_access_token(SECRET, account_id=ACCOUNT, email="a@b.c",
                                           session_id=SESSION)
    with pytest.raises(AuthenticationError):
        stream_tickets.verify(SECRET, token)
