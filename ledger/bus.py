"""Redis: the key and channel names outside the ingest queue, and the client factory.

Keys that are used together carry the same hash tag so that one Lua script or MULTI can touch
them on Redis Cluster: ``{p:<project_id>}`` for a project's keys; ``{key:<key_id>}`` for an API
key's cache entries and rate-limit counters. The queue's own names (queue, depth, quota,
notifications, tail) are ``ledger.queue.names``, the one place they are defined.

``client(url)`` is the one factory: ``redis://``, ``rediss://`` and ``unix://`` give a plain
client; ``redis+cluster://host:port[,host:port…]`` (``rediss+cluster://`` for TLS) a Redis
Cluster client that starts from those nodes and discovers the rest. Both answer the same
commands; what must differ on a cluster (one XREADGROUP per slot) asks ``cluster_of``.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import unquote

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ledger.errors import ConfigError

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


def auth_failures(client: str, key_id: str) -> str:
    """Failed checks of one key id from one client address (throttling guessers).

    Per key id, so that one address guessing (or a proxy relaying guesses) cannot lock the
    other keys used from that address out.
    """
    return f"ledger:auth-failures:{client}:{key_id}"


# Revoked key ids are published here; every gateway drops its in-process copy.
KEY_REVOKED_CHANNEL = "ledger:api-keys:revoked"


# -- background jobs ----------------------------------------------------------------------------


def job_lock(job: str) -> str:
    """Held (SET NX EX) by the one analytics copy that runs ``job`` this time."""
    return f"ledger:analytics:lock:{job}"


# -- errors ---------------------------------------------------------------------------------------

#: Error prefixes by which Redis says "not now" rather than "this command is wrong". A script's
#: error carries the prefix of the command that failed inside it ("-OOM command not allowed").
_NOT_NOW = ("OOM", "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY ",
            "NOREPLICAS")


def unavailable(exc: RedisError) -> bool:
    """Whether ``exc`` means Redis cannot serve now (down, slow, full, failing over): a 503."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return True
    if not isinstance(exc, ResponseError):
        return False
    text = str(exc)
    inner = text.split(": -", 1)[1] if text.startswith("Error running script") and ": -" in text \
        else text
    return inner.startswith(_NOT_NOW)


# -- client -------------------------------------------------------------------------------------


#: URL schemes of a Redis Cluster: the nodes to start from, comma-separated.
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://…``)."""
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def cluster_nodes(url: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """``([(host, port), …], username, password)`` of a ``redis+cluster://`` URL.

    Raises:
        ConfigError: the URL names no node, a node is not HOST:PORT, or it names a database
            (a cluster has only database 0) or options.
    """
    rest = url.split("://", 1)[1]
    if "?" in rest or "/" in rest.rstrip("/"):
        raise ConfigError("a redis+cluster:// URL names nodes only (a cluster has only"
                          " database 0, and takes no options): redis+cluster://host:port,…")
    rest = rest.rstrip("/")
    username = password = None
    if "@" in rest:
        credentials, rest = rest.rsplit("@", 1)
        user, _, secret = credentials.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    nodes = []
    for part in rest.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"a redis+cluster:// URL lists nodes as host:port separated by"
                              f" commas, got {part.strip()!r}")
        nodes.append((host.strip("[]"), int(port)))
    return nodes, username, password


class _Cluster(RedisCluster):
    """A cluster client whose "cannot reach the cluster" is a ``ConnectionError``.

    redis-py raises ``RedisClusterException`` (not even a ``RedisError``) when no start node
    answers or the slots are not all served yet; every caller already treats a
    ``ConnectionError`` as "Redis is down" (a 503, a writer's retry, the CLI's one line).
    """

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"cannot reach the Redis Cluster: {exc}") from exc


#: Connections one client keeps to a Redis server, and how long a command waits for one of
#: them when all are busy. redis-py 6 and later fail at once past 100 ("Too many
#: connections", a 503 for the request); redis-py 5 had no bound. A burst of commands
#: (a rate-limit round trip for each of 150 keys at once, say) now waits its turn for a few
#: milliseconds instead; only a Redis that holds every connection for seconds gets the 503.
MAX_CONNECTIONS = 100
CONNECTION_WAIT_SECONDS = 5.0


def client(url: str, *, decode: bool = False, resend: bool = True) -> aioredis.Redis:
    """One client per daemon: created at start, closed with ``aclose()`` at shutdown.

    Args:
        resend: whether a command whose reply was lost (connection dropped, timeout) is sent
            again. Never for scripts that count (the enqueue: quota, depth, notifications):
            the first run may have happened, and a second would count twice.
    """
    common: dict[str, Any] = {"decode_responses": decode, "health_check_interval": 30,
                              "socket_connect_timeout": 5}
    if not resend:
        common["retry"] = Retry(NoBackoff(), 0)
    if is_cluster_url(url):
        nodes, username, password = cluster_nodes(url)
        cluster = _Cluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes],
                           username=username, password=password,
                           ssl=url.startswith("rediss+"), **common)
        # Same command methods (the command mixins are shared); typed as the plain client so
        # that every caller takes either. Where a cluster must be used differently (reads
        # across projects: one slot per command), the caller asks ``cluster_of``.
        return cast(aioredis.Redis, cluster)
    # What ``Redis.from_url`` does, with a pool that waits for a free connection.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, retry_on_timeout=resend, max_connections=MAX_CONNECTIONS,
        timeout=CONNECTION_WAIT_SECONDS, **common)
    return aioredis.Redis.from_pool(pool)


def cluster_of(redis: aioredis.Redis) -> RedisCluster | None:
    """The cluster client ``redis`` is, or None for a single Redis server."""
    return redis if isinstance(redis, RedisCluster) else None


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


def registrations_client(client: str) -> str:
    """Registrations from one client address (each costs a bcrypt hash)."""
    return f"ledger:registrations:client:{client}"


# -- browser view stream tickets -----------------------------------------------------------------


def stream_ticket_used(account_id: str, nonce: str) -> str:
    """Exists once a stream ticket has opened a stream: a ticket is good for one stream only."""
    return f"ledger:{{acct:{account_id}}}:stream-ticket-used:{nonce}"


# -- alerts (appended by the alerts work) -------------------------------------------------------

#: Consumer group of the alerts daemons on every project's notifications stream.
ALERTS_GROUP = "alerts"


def alert_frequency(project_id: str, rule_id: str, fingerprint: str) -> str:
    """Newest event ids of one group under one group_frequency rule (scored by ingest time)."""
    return f"ledger:{{p:{project_id}}}:alerts:freq:{rule_id}:{fingerprint}"


def alerts_lock(job: str) -> str:
    """Held (SET NX EX) by the one alerts copy that runs ``job`` this interval."""
    return f"ledger:alerts:lock:{job}"


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
