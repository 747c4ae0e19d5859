"""Throttle password guessing on ``POST /api/v1/accounts/login`` (DESIGN §5).

Failures are counted in Redis per email (under its SHA-256) and per client address, in fixed
windows that expire on their own. Each attempt reserves its failure before auth checks the
password, atomically, and gives it back when the password was right: over either limit the
gateway answers 429 before asking auth, so a guesser cannot make the auth daemon spend bcrypt
time either, however many guesses it sends at once.
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
# Each registration costs a bcrypt hash and an account row: a person registers a handful of
# accounts at most, a script thousands.
REGISTRATION_LIMIT = 10
REGISTRATION_WINDOW_SECONDS = 10 * 60


def _email_key(email: str) -> str:
    # Lower-cased as auth stores emails, so "Ada@X" and "ada@x" share one counter.
    return bus.login_failures_email(hashlib.sha256(email.strip().lower().encode()).hexdigest())


# KEYS: one counter.  ARGV: limit, window seconds.  Returns 0 when the attempt is reserved,
# else the seconds left in the window. One key per script: safe on Redis Cluster.
_RESERVE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 1 then return -1 end
  return ttl
end
return 0
"""


async def _reserve(redis: aioredis.Redis, name: str, limit: int,
                   window: int = FAILURE_WINDOW_SECONDS) -> int:
    answer = await redis.eval(_RESERVE, 1, name, limit, window)
    return int(answer)


def _refusal(wait: int, what: str = "failed logins",
             window: int = FAILURE_WINDOW_SECONDS) -> RateLimitedError:
    # wait < 0 only if the counter lost its TTL: wait a whole window.
    seconds = wait if wait > 0 else window
    return RateLimitedError(f"too many {what}: try again in {seconds} seconds",
                            retry_after=seconds)


async def reserve_registration(redis: aioredis.Redis, client: str) -> None:
    """Count one registration from ``client``; refuse past ``REGISTRATION_LIMIT`` a window.

    Raises:
        RateLimitedError: too many registrations from this address (429, ``Retry-After``).
    """
    wait = await _reserve(redis, bus.registrations_client(client), REGISTRATION_LIMIT,
                          REGISTRATION_WINDOW_SECONDS)
    if wait:
        raise _refusal(wait, "registrations from this address", REGISTRATION_WINDOW_SECONDS)


async def reserve(redis: aioredis.Redis, email: str, client: str) -> None:
    """Count this attempt as a failure of the email and of the address before checking it.

    Reserved atomically (INCR, then compare), so that concurrent guesses cannot all pass a
    check made before any of them failed: at most ``EMAIL_FAILURE_LIMIT`` passwords of one
    email are ever checked per window. ``succeeded`` or ``released`` gives it back.

    Raises:
        RateLimitedError: over a limit (429, ``Retry-After`` = seconds until the window ends).
    """
    email_key = _email_key(email)
    wait = await _reserve(redis, email_key, EMAIL_FAILURE_LIMIT)
    if wait:
        raise _refusal(wait)
    wait = await _reserve(redis, bus.login_failures_client(client), CLIENT_FAILURE_LIMIT)
    if wait:
        await redis.decr(email_key)
        raise _refusal(wait)


async def released(redis: aioredis.Redis, email: str, client: str) -> None:
    """Give a reservation back: the password was never judged (auth unavailable, bad input)."""
    pipe = redis.pipeline(transaction=False)
    pipe.decr(_email_key(email))
    pipe.decr(bus.login_failures_client(client))
    await pipe.execute()


async def succeeded(redis: aioredis.Redis, email: str, client: str) -> None:
    """The password was right: forget the email's failures and give the address its try back.

    The address's other failures stay: it may be guessing other emails.
    """
    pipe = redis.pipeline(transaction=False)
    pipe.delete(_email_key(email))
    pipe.decr(bus.login_failures_client(client))
    await pipe.execute()
