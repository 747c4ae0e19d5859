"""Account sessions: short-lived JWT access tokens and rotating refresh tokens (DESIGN §4).

* Access token: a JWT (HS256, ``LEDGER_JWT_SECRET``) valid ``ACCESS_TOKEN_SECONDS`` (15 min),
  carrying the account id (``sub``), its email and the session id (``sid``). Gateways verify it
  locally, with one Redis lookup that tells whether its session was revoked since it was issued.
* Refresh token: ``lrt_<random>``, valid ``REFRESH_TOKEN_SECONDS`` (7 days), stored as a
  SHA-256 only. Each use rotates it: the old one is revoked and a new one of the same *family*
  (the session) is issued. Presenting an already rotated token means it leaked (or a client
  raced itself): the whole family is revoked, so a stolen token dies with its session.
* Logout revokes the session; a password change revokes every session of the account. Both
  also mark the session revoked in Redis until its last access token has expired, so revoked
  access tokens stop working at once rather than in up to 15 minutes.

The refresh prefix is not ``ledger_``: a bearer starting with ``ledger_`` is an API key.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import psycopg
import redis.asyncio as aioredis
from psycopg.rows import dict_row

from ledger import bus
from ledger.errors import AuthenticationError, ConfigError, NotFoundError

ACCESS_TOKEN_SECONDS = 15 * 60
REFRESH_TOKEN_SECONDS = 7 * 24 * 3600
REFRESH_PREFIX = "lrt_"
ALGORITHM = "HS256"
ISSUER = "ledger"
#: HS256 with a shorter key is brute-forceable (RFC 7518 §3.2 asks for >= 256 bits).
MIN_SECRET_BYTES = 32

_LOGIN_AGAIN = "log in again (POST /api/v1/accounts/login)"


@dataclass(frozen=True)
class AccessClaims:
    """What a valid access token says."""

    account_id: str
    email: str
    session_id: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Session:
    """A refresh token just issued (the only time it exists in clear) and its session."""

    account_id: str
    session_id: str
    refresh_token: str
    expires_at: datetime


def _secret(secret: str | None) -> bytes:
    if not secret:
        raise ConfigError("LEDGER_JWT_SECRET is not set: accounts need it to sign access tokens"
                          " (`ledger up` generates one)")
    raw = str(secret).encode()
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigError(f"LEDGER_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long"
                          " (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return raw


def signing_secret(secret: str | None) -> bytes:
    """``LEDGER_JWT_SECRET`` as bytes, refused when unset or too short (stream tickets too)."""
    return _secret(secret)


def issue_access_token(secret: str | None, *, account_id: str, email: str, session_id: str,
                       now: datetime | None = None) -> tuple[str, datetime]:
    """Sign an access token.

    Args:
        secret: ``settings.jwt_secret``.
        account_id: The account (``sub``).
        email: The account's email (shown by clients; never trusted for access).
        session_id: The refresh-token family the token belongs to (``sid``).
        now: The issue time; tests pass a fixed one.

    Returns:
        The token and when it expires.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    expires = now + timedelta(seconds=ACCESS_TOKEN_SECONDS)
    claims = {"sub": account_id, "email": email, "sid": session_id, "typ": "access",
              "iss": ISSUER, "iat": int(now.timestamp()), "exp": int(expires.timestamp()),
              "jti": secrets.token_hex(8)}
    return jwt.encode(claims, _secret(secret), algorithm=ALGORITHM), expires


def decode_access_token(secret: str | None, token: str) -> AccessClaims:
    """Verify an access token's signature, expiry and shape.

    Raises:
        AuthenticationError: expired, tampered with, or not an access token.
    """
    key = _secret(secret)
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["sub", "sid", "exp", "iat", "iss"]})
    except jwt.ExpiredSignatureError:
        raise AuthenticationError(
            "the access token has expired: get a new one with POST /api/v1/accounts/refresh"
        ) from None
    except jwt.PyJWTError:
        raise AuthenticationError(f"the access token is not valid: {_LOGIN_AGAIN}") from None
    if claims.get("typ") != "access":
        raise AuthenticationError(f"not an access token: {_LOGIN_AGAIN}")
    try:
        return AccessClaims(
            account_id=str(uuid.UUID(str(claims["sub"]))), email=str(claims.get("email", "")),
            session_id=str(uuid.UUID(str(claims["sid"]))),
            issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (ValueError, TypeError, OverflowError, OSError):  # e.g. exp past year 9999
        raise AuthenticationError(f"the access token is not valid: {_LOGIN_AGAIN}") from None


async def is_revoked(redis: aioredis.Redis, claims: AccessClaims) -> bool:
    """Whether the session of ``claims`` was revoked after the token was issued."""
    return bool(await redis.exists(bus.session_revoked(claims.account_id, claims.session_id)))


async def _mark_revoked(redis: aioredis.Redis, account_id: str, session_ids: list[str]) -> None:
    if not session_ids:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for session_id in session_ids:
            # Kept as long as an access token of the session can still be valid.
            pipe.set(bus.session_revoked(account_id, session_id), b"1",
                     ex=ACCESS_TOKEN_SECONDS + 60)
        await pipe.execute()


def token_hash(token: str) -> str:
    """The stored form of a refresh token: a leaked table cannot be replayed."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


async def _insert(conn: psycopg.AsyncConnection[Any], account_id: str, family_id: str,
                  now: datetime) -> Session:
    token = _new_refresh_token()
    expires = now + timedelta(seconds=REFRESH_TOKEN_SECONDS)
    await conn.execute(
        "INSERT INTO refresh_tokens (id, account_id, token_hash, family_id, expires_at,"
        " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
        (uuid.uuid4(), account_id, token_hash(token), family_id, expires, now),
    )
    return Session(account_id=account_id, session_id=family_id, refresh_token=token,
                   expires_at=expires)


async def create_session(conn: psycopg.AsyncConnection[Any], account_id: str) -> Session:
    """Start a session (a new refresh-token family) for an authenticated account.

    Raises:
        NotFoundError: no such account.
    """
    try:
        wanted = str(uuid.UUID(account_id))
    except ValueError:
        raise NotFoundError(f"no account with id {account_id[:64]}") from None
    cur = await conn.execute("SELECT 1 FROM accounts WHERE id = %s", (wanted,))
    if await cur.fetchone() is None:
        raise NotFoundError(f"no account with id {wanted}")
    return await _insert(conn, wanted, str(uuid.uuid4()), datetime.now(UTC))


async def _find(conn: psycopg.AsyncConnection[Any], token: str,
                lock: bool) -> dict[str, Any] | None:
    if not token.startswith(REFRESH_PREFIX) or len(token) > 200:
        return None
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, account_id, family_id, expires_at, revoked_at FROM refresh_tokens"
            " WHERE token_hash = %s" + (" FOR UPDATE" if lock else ""), (token_hash(token),))
        return await cur.fetchone()


async def _revoke_family(conn: psycopg.AsyncConnection[Any], family_id: Any) -> None:
    await conn.execute("UPDATE refresh_tokens SET revoked_at = now()"
                       " WHERE family_id = %s AND revoked_at IS NULL", (family_id,))


async def rotate(conn: psycopg.AsyncConnection[Any], redis: aioredis.Redis,
                 refresh_token: str) -> Session:
    """Exchange a refresh token for a new one of the same session (the old one is revoked).

    Raises:
        AuthenticationError: unknown, expired or revoked token; a revoked (already rotated)
            token also revokes its whole session.
    """
    now = datetime.now(UTC)
    reused: dict[str, Any] | None = None
    async with conn.transaction():
        row = await _find(conn, refresh_token, lock=True)
        if row is None:
            raise AuthenticationError(f"the refresh token is not valid: {_LOGIN_AGAIN}")
        if row["revoked_at"] is not None:
            # Committed before the error below: the family must stay revoked.
            await _revoke_family(conn, row["family_id"])
            reused = row
        elif row["expires_at"] <= now:
            raise AuthenticationError(f"the refresh token has expired: {_LOGIN_AGAIN}")
        else:
            await conn.execute("UPDATE refresh_tokens SET revoked_at = now() WHERE id = %s",
                               (row["id"],))
            return await _insert(conn, str(row["account_id"]), str(row["family_id"]), now)
    await _mark_revoked(redis, str(reused["account_id"]), [str(reused["family_id"])])
    raise AuthenticationError(
        f"the refresh token was already used, so the session was closed: {_LOGIN_AGAIN}")


async def revoke(conn: psycopg.AsyncConnection[Any], redis: aioredis.Redis,
                 refresh_token: str) -> tuple[str, str]:
    """Log out: revoke the session of ``refresh_token`` (idempotent for a revoked one).

    Returns:
        ``(account_id, session_id)``.

    Raises:
        AuthenticationError: the token is unknown.
    """
    row = await _find(conn, refresh_token, lock=False)
    if row is None:
        raise AuthenticationError("the refresh token is not valid (nothing to log out of)")
    await _revoke_family(conn, row["family_id"])
    account_id, session_id = str(row["account_id"]), str(row["family_id"])
    await _mark_revoked(redis, account_id, [session_id])
    return account_id, session_id


async def revoke_account(conn: psycopg.AsyncConnection[Any], redis: aioredis.Redis,
                         account_id: str, *, keep_session: str | None = None) -> int:
    """Revoke every session of an account (after a password change), except ``keep_session``.

    Returns:
        How many sessions were revoked.
    """
    cur = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now()"
        " WHERE account_id = %s AND revoked_at IS NULL AND family_id IS DISTINCT FROM %s"
        " RETURNING family_id",
        (account_id, keep_session),
    )
    families = sorted({str(r[0]) for r in await cur.fetchall()})
    # Sessions whose refresh token expired may still have a live access token.
    recent = await conn.execute(
        "SELECT DISTINCT family_id FROM refresh_tokens WHERE account_id = %s"
        " AND created_at > now() - make_interval(secs => %s)"
        " AND family_id IS DISTINCT FROM %s",
        (account_id, ACCESS_TOKEN_SECONDS, keep_session),
    )
    families = sorted(set(families) | {str(r[0]) for r in await recent.fetchall()})
    await _mark_revoked(redis, account_id, families)
    return len(families)
