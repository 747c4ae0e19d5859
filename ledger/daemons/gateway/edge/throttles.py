"""Throttle password guessing on ``POST /api/v1/accounts/login`` (DESIGN §5).

Failures are counted in Redis per email (under its SHA-256) and per client address, in fixed
windows that expire on their own. Over either limit the gateway answers 429 before asking auth,
so a guesser cannot make the auth daemon spend bcrypt time either.
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

from ledger import bus
from ledger.errors import RateLimitedError

# One person mistyping a password stays far below 10 tries in 15 minutes; a guesser gets
# 10 guesses per account per window (~1000 a day), far too few for any password worth having.
EMAIL_FAILURE_LIMIT = 10
# Higher, because offices and NATs share one address among many honest users; still stops one
# address from spraying guesses over many accounts.
CLIENT_FAILURE_LIMIT = 50
FAILURE_WINDOW_SECONDS = 15 * 60


def _email_key(email: str) -> str:
    # Lower-cased as auth stores emails, so "Ada@X" and "ada@x" share one counter.
    return bus.login_failures_email(hashlib.sha256(email.strip().lower().encode()).hexdigest())


def _keys(email: str, client: str) -> tuple[str, str]:
    return _email_key(email), bus.login_failures_client(client)


async def check(redis: aioredis.Redis, email: str, client: str) -> None:
    """Refuse the login attempt if this email or this address failed too often recently.

    Raises:
        RateLimitedError: over a limit (429, ``Retry-After`` = seconds until the window ends).
    """
    email_key, client_key = _keys(email, client)
    pipe = redis.pipeline(transaction=False)
    pipe.get(email_key)
    pipe.ttl(email_key)
    pipe.get(client_key)
    pipe.ttl(client_key)
    email_count, email_ttl, client_count, client_ttl = await pipe.execute()
    waits = [_wait(ttl) for count, ttl, limit in ((email_count, email_ttl, EMAIL_FAILURE_LIMIT),
                                                  (client_count, client_ttl,
                                                   CLIENT_FAILURE_LIMIT))
             if count is not None and int(count) >= limit]
    if waits:
        seconds = max(waits)
        raise RateLimitedError(f"too many failed logins: try again in {seconds} seconds",
                               retry_after=seconds)


def _wait(ttl: int) -> int:
    # ttl < 0 only if the key expired between GET and TTL (or lost its TTL): wait a window.
    return max(1, int(ttl)) if int(ttl) > 0 else FAILURE_WINDOW_SECONDS


async def record_failure(redis: aioredis.Redis, email: str, client: str) -> None:
    """Count a wrong email or password against the email and the address."""
    pipe = redis.pipeline(transaction=True)
    for name in _keys(email, client):
        # SET NX starts a window only once; INCR keeps its TTL, so windows do not slide.
        pipe.set(name, 0, ex=FAILURE_WINDOW_SECONDS, nx=True)
        pipe.incr(name)
    await pipe.execute()


async def record_success(redis: aioredis.Redis, email: str) -> None:
    """Forget the email's failures (the address's stay: it may be guessing other emails)."""
    await redis.delete(_email_key(email))
