"""Redis: every key and channel name (here and nowhere else), the client factory, and scripts.

Keys that are used together carry the same hash tag so that one Lua script or MULTI can touch
them on Redis Cluster: ``{p:<project_id>}`` for a project's queue, depth, quota, notifications
and tail; ``{key:<key_id>}`` for an API key's cache entries and rate-limit counters.
"""

from __future__ import annotations

import redis.asyncio as aioredis

# -- per project --------------------------------------------------------------------------------


def queue_stream(project_id: str) -> str:
    """Stream of accepted batches waiting for a writer (one entry per accepted request)."""
    return f"ledger:{{p:{project_id}}}:queue"


def queue_depth(project_id: str) -> str:
    """Logs queued and not yet committed to PostgreSQL (backpressure counter)."""
    return f"ledger:{{p:{project_id}}}:depth"


def dead_letters(project_id: str) -> str:
    """Stream of logs that PostgreSQL kept refusing, each with its error."""
    return f"ledger:{{p:{project_id}}}:dead"


def daily_quota(project_id: str, day: str) -> str:
    """Logs accepted on ``day`` (YYYYMMDD, UTC)."""
    return f"ledger:{{p:{project_id}}}:quota:{day}"


def notifications_stream(project_id: str) -> str:
    """Capped stream of the newest error notifications; its ids are the SSE event ids."""
    return f"ledger:{{p:{project_id}}}:notifications"


def tail_stream(project_id: str) -> str:
    """Capped stream of the newest logs of a project for ``GET /logs/tail``."""
    return f"ledger:{{p:{project_id}}}:tail"


def tail_watchers(project_id: str) -> str:
    """Exists (with a TTL) while a gateway has tail clients: ingest feeds the tail only then."""
    return f"ledger:{{p:{project_id}}}:tail-watchers"


def notifications_channel(project_id: str) -> str:
    """Pub/sub channel on which each new error notification is published (DESIGN §7)."""
    return f"notifications:errors:{project_id}"


def tail_channel(project_id: str) -> str:
    """Pub/sub channel poked when new logs reach a project's tail stream."""
    return f"logs:tail:{project_id}"


# Set of project ids that have ever queued a log: writers read all their streams.
QUEUE_PROJECTS = "ledger:queue-projects"
WRITER_GROUP = "writers"

# -- per API key --------------------------------------------------------------------------------


def key_cache(key_id: str, key_sha256: str) -> str:
    """Validated key (5 min), under the SHA-256 of the whole key, never the key itself."""
    return f"ledger:{{key:{key_id}}}:valid:{key_sha256}"


def key_emergency(key_id: str, key_sha256: str) -> str:
    """Emergency copy (10 min) served while the auth daemon is unreachable."""
    return f"ledger:{{key:{key_id}}}:emergency:{key_sha256}"


def key_cache_index(key_id: str) -> str:
    """Set of the SHA-256s cached for a key id, so that revocation can delete them all."""
    return f"ledger:{{key:{key_id}}}:cached"


def rate_counter(key_id: str, window: str, bucket: int) -> str:
    """Requests of one key in one minute (``window='m'``) or hour (``'h'``) bucket."""
    return f"ledger:{{key:{key_id}}}:rl:{window}:{bucket}"


def auth_failures(client: str) -> str:
    """Failed key checks from one client address (throttling guessers)."""
    return f"ledger:auth-failures:{client}"


# Revoked key ids are published here; every gateway drops its in-process copy.
KEY_REVOKED_CHANNEL = "ledger:api-keys:revoked"


# -- background jobs ----------------------------------------------------------------------------


def job_lock(job: str) -> str:
    """Held (SET NX EX) by the one analytics copy that runs ``job`` this time."""
    return f"ledger:analytics:lock:{job}"


# -- client -------------------------------------------------------------------------------------


def client(url: str, *, decode: bool = False) -> aioredis.Redis:
    """One client per daemon: created at start, closed with ``aclose()`` at shutdown."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=decode,
        health_check_interval=30,
        socket_connect_timeout=5,
        retry_on_timeout=True,
    )


# -- query (appended by the query work) ---------------------------------------------------------


def query_total(project_id: str, digest: str) -> str:
    """Capped count of a project's logs matching one filter, reused by later pages of a walk."""
    return f"ledger:{{p:{project_id}}}:total:{digest}"


def session_revoked(account_id: str, session_id: str) -> str:
    """Exists while access tokens of a logged-out account session may still be unexpired."""
    return f"ledger:{{acct:{account_id}}}:session-revoked:{session_id}"


# -- account logins (appended by the login-throttle work) ---------------------------------------


def login_failures_email(email_sha256: str) -> str:
    """Failed logins for one email, under the SHA-256 of the lower-cased email (never the email)."""
    return f"ledger:login-failures:email:{email_sha256}"


def login_failures_client(client: str) -> str:
    """Failed logins from one client address, whatever the emails tried."""
    return f"ledger:login-failures:client:{client}"


# -- analytics (appended by the analytics work) -------------------------------------------------

# Set of "<project id>|<hours since the epoch>" that writers committed logs into: the rollup
# job recomputes those hours (late logs included) and removes them.
TOUCHED_HOURS = "ledger:{analytics}:touched-hours"
# The pairs a rollup run has taken and not finished: put back by the next run if it died.
TOUCHED_HOURS_TAKEN = "ledger:{analytics}:touched-hours:taken"
# Newest runs of every analytics job (JSON, newest first, capped), for operators and tests.
JOB_HISTORY = "ledger:analytics:history"


def job_last_run(job: str) -> str:
    """When ``job`` last succeeded (epoch seconds): copies share one schedule."""
    return f"ledger:analytics:last-run:{job}"


def metric_cache(project_id: str, name: str) -> str:
    """A cached metric figure of a project (error rate, volume, top errors, usage)."""
    return f"ledger:{{p:{project_id}}}:metrics:{name}"
