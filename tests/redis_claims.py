"""Which Redis databases a test run may use, and the claim that makes one database its own.

A run claims a database with ``SET ledger-test:claim <token> NX EX 600`` in it, keeps the claim
while it runs (every per-test flush re-sets it in the same MULTI), and flushes only a database
whose claim is its own. Two runs on one Redis therefore never empty each other's database; a
run that dies leaves a claim that expires by itself.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

CLAIM_KEY = "ledger-test:claim"
CLAIM_SECONDS = 600


def redis_dbs(url: str, spec: str | None) -> list[int]:
    """The databases tests may use: ``spec`` (``LEDGER_TEST_REDIS_DBS``: ``"1-15"``,
    ``"3,5-7"``) or, when unset, only the database ``url`` names (``0`` when none)."""
    if not spec or not spec.strip():
        path = url.split("?", 1)[0]
        last = path.rsplit("/", 1)[1] if path.count("/") >= 3 else ""
        return [int(last)] if last.isdigit() else [0]
    dbs: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        dbs.extend(range(int(low), int(high or low) + 1))
    return dbs


def url_of_db(url: str, db: int) -> str:
    """``url`` pointed at database ``db``."""
    base = url.split("?", 1)[0]
    if base.count("/") >= 3:  # drop a /<db> suffix
        base = base.rsplit("/", 1)[0]
    return f"{base}/{db}"


async def ledger_keys(client: aioredis.Redis) -> list[bytes]:
    """Every key of a test's Redis database except the run's claim."""
    keys: Any = await client.keys("*")
    return [key for key in keys if key != CLAIM_KEY.encode()]
