"""Access tokens: what is signed, what is refused (pure; refresh tokens run in integration)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from ledger.core import sessions
from ledger.errors import AuthenticationError, ConfigError

SECRET = "s" * 40
ACCOUNT = str(uuid.uuid4())
SESSION = str(uuid.uuid4())


def issue(**kw: object) -> str:
    token, _ = sessions.issue_access_token(SECRET, account_id=ACCOUNT, email="a@example.com",
                                           session_id=SESSION, **kw)  # type: ignore[arg-type]
    return token


def test_round_trip_and_fifteen_minutes() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    token, expires = sessions.issue_access_token(SECRET, account_id=ACCOUNT,
                                                 email="a@example.com", session_id=SESSION,
                                                 now=now)
    assert expires - now == timedelta(minutes=15)
    claims = sessions.decode_access_token(SECRET, token)
    assert (claims.account_id, claims.session_id, claims.email) == (ACCOUNT, SESSION,
                                                                    "a@example.com")
    assert claims.expires_at == expires and claims.issued_at == now


@pytest.mark.parametrize(("token", "match"), [
    (issue(now=datetime.now(UTC) - timedelta(minutes=16)), "expired"),
    (jwt.encode({"sub": ACCOUNT, "sid": SESSION, "typ": "access", "iss": "ledger",
                 "iat": 0, "exp": 2**40}, "o" * 40, algorithm="HS256"), "not valid"),
    (jwt.encode({"sub": ACCOUNT, "sid": SESSION, "typ": "refresh", "iss": "ledger",
                 "iat": 0, "exp": 2**40}, SECRET, algorithm="HS256"), "not an access token"),
    (jwt.encode({"sub": "not-a-uuid", "sid": SESSION, "typ": "access", "iss": "ledger",
                 "iat": 0, "exp": 2**40}, SECRET, algorithm="HS256"), "not valid"),
    (jwt.encode({"sub": ACCOUNT, "typ": "access", "iss": "ledger", "iat": 0, "exp": 2**40},
                SECRET, algorithm="HS256"), "not valid"),
    (jwt.encode({"sub": ACCOUNT, "sid": SESSION, "typ": "access", "iss": "ledger",
                 "iat": 0, "exp": 2**40}, SECRET * 2, algorithm="HS512"), "not valid"),
    ("a.b.c", "not valid"),
])
def test_bad_tokens_are_401(token: str, match: str) -> None:
    with pytest.raises(AuthenticationError, match=match):
        sessions.decode_access_token(SECRET, token)


def test_unsigned_token_is_refused() -> None:
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    body = jwt.utils.base64url_encode(
        f'{{"sub":"{ACCOUNT}","sid":"{SESSION}","typ":"access","iss":"ledger","iat":0,'
        f'"exp":{2**40}}}'.encode()).decode()
    with pytest.raises(AuthenticationError):
        sessions.decode_access_token(SECRET, f"{header}.{body}.")


@pytest.mark.parametrize("secret", [None, "", "short"])
def test_missing_or_weak_secret_is_a_config_error(secret: str | None) -> None:
    with pytest.raises(ConfigError, match="LEDGER_JWT_SECRET"):
        sessions.issue_access_token(secret, account_id=ACCOUNT, email="", session_id=SESSION)


def test_refresh_tokens_are_not_api_keys_and_are_stored_hashed() -> None:
    assert not sessions.REFRESH_PREFIX.startswith("ledger_")
    token = sessions._new_refresh_token()
    assert token.startswith("lrt_") and len(token) > 40
    assert sessions.token_hash(token) != token and len(sessions.token_hash(token)) == 64
