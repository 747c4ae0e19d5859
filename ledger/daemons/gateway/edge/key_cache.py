"""API-key validation on the hot path (DESIGN §4, §9: < 0.3 ms added when cached).

    memory (≤ LEDGER_GATEWAY_KEY_CACHE_SECONDS, keyed by the key's SHA-256)
      └─ miss → Redis cache (5 min, written by the auth daemon)
                 └─ miss → auth daemon ValidateApiKey over gRPC, behind a circuit breaker
                            └─ breaker open / auth down → Redis emergency copy (10 min) or 503

Malformed keys are refused locally. Revoked key ids arrive over pub/sub and leave the memory
cache at once; when that subscription drops, the memory cache is cleared (a revocation may
have been missed). A revocation generation guards the race where an identity read from
Redis or auth just before a revocation would land in memory just after its drop: a lookup
that spans a revocation is answered but not cached. Repeated failures of one key id from one
client address are throttled (``edge/client_address.py`` says what the address is).

Concurrent checks of one key that miss memory share one lookup. When a busy key's memory
entry expired, every request in flight looked it up in Redis at once: with 512 connections
that was more than the Redis client's 100 connections, and 383 requests got a 503 "Too many
connections" in one second (issue 17, bench/RESULTS.md). The shared lookup is a task of its
own, so a caller that goes away does not cancel it for the others; a refusal is counted once,
against the address of the caller that started it (the others presented the same key). A
check made after a revocation never joins a lookup that began before it.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ledger import bus
from ledger.core.api_keys import (
    MALFORMED,
    KeyIdentity,
    cached_identity,
    emergency_identity,
    key_digest,
    parse_key,
)
from ledger.daemons.gateway.edge.breaker import CircuitBreaker
from ledger.daemons.gateway.routes.metrics import Metrics
from ledger.errors import AuthenticationError, LedgerError, RateLimitedError, UnavailableError
from ledger.rpc.auth_client import AuthClient

logger = logging.getLogger(__name__)

AUTH_TIMEOUT_SECONDS = 3.0
FAILURE_LIMIT = 20  # refused checks per (client address, key id) per window before a 429
FAILURE_WINDOW_SECONDS = 300
RESUBSCRIBE_SECONDS = 1.0
MAX_KEY_CHARS = 256  # well above any real key: longer ones are refused before being hashed


class KeyCache:
    """In-process identities by key digest, with a TTL and a size bound."""

    def __init__(self, ttl_seconds: float, *, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[KeyIdentity, float]] = {}

    def get(self, digest: str) -> KeyIdentity | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._entries[digest]
            return None
        return entry[0]

    def put(self, digest: str, identity: KeyIdentity) -> None:
        if self.ttl_seconds <= 0:
            return
        if len(self._entries) >= self.max_entries and digest not in self._entries:
            del self._entries[next(iter(self._entries))]  # oldest insertion first
        self._entries[digest] = (identity, self._clock() + self.ttl_seconds)

    def drop_key_id(self, key_id: str) -> int:
        """Forget every entry of ``key_id``; return how many there were."""
        stale = [d for d, (identity, _) in self._entries.items() if identity.key_id == key_id]
        for digest in stale:
            del self._entries[digest]
        return len(stale)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class KeyValidator:
    """Turns a full API key into a ``KeyIdentity`` as cheaply as the caches allow."""

    def __init__(
        self,
        redis: aioredis.Redis,
        auth: AuthClient,
        cache: KeyCache,
        breaker: CircuitBreaker,
        metrics: Metrics,
        *,
        failure_limit: int = FAILURE_LIMIT,
        failure_window_seconds: int = FAILURE_WINDOW_SECONDS,
    ) -> None:
        self.redis = redis
        self.auth = auth
        self.cache = cache
        self.breaker = breaker
        self.metrics = metrics
        self.failure_limit = failure_limit
        self.failure_window_seconds = failure_window_seconds
        self.subscribed = asyncio.Event()
        # Bumped by every revocation (and every lost subscription): an identity looked up
        # before a bump may belong to a key revoked meanwhile, so it is not cached.
        self.generation = 0
        #: Called with each revoked key id (the live streams of that key end).
        self.revocation_listeners: list[Callable[[str], None]] = []
        #: The lookups under way, by key digest and revocation generation: concurrent checks
        #: of a key share one, but a check made after a revocation never joins a lookup that
        #: began before it (that one may have read the key before it was revoked).
        self._lookups: dict[tuple[str, int], asyncio.Task[KeyIdentity]] = {}
        #: Lookups started past the memory cache (for tests).
        self.lookups_started = 0

    async def validate(self, full_key: str, client_of: Callable[[], str]) -> KeyIdentity:
        """The identity of ``full_key``, presented by the caller at ``client_of()``.

        The caller's address is asked for only when the key is not in memory: only the
        throttle of failed checks needs it, and working it out (the peer, X-Forwarded-For
        behind trusted proxies) was a few % of a cached key's check (issue 17).

        Raises:
            AuthenticationError: malformed, unknown, revoked or wrong key (401).
            RateLimitedError: the caller's address failed too often recently (429).
            UnavailableError: auth is down and the key is not in the emergency cache (503).
        """
        if len(full_key) > MAX_KEY_CHARS:
            raise AuthenticationError(MALFORMED)
        digest = key_digest(full_key)
        identity = self.cache.get(digest)
        if identity is not None:
            self.metrics.key_lookup("memory", True)
            return identity
        self.metrics.key_lookup("memory", False)
        key_id, _ = parse_key(full_key)  # malformed: 401 here, no Redis, no RPC
        slot = (digest, self.generation)
        lookup = self._lookups.get(slot)
        if lookup is None:
            lookup = asyncio.create_task(
                self._look_up(full_key, digest, key_id, client_of, slot[1]),
                name="gateway-key-lookup")
            self._lookups[slot] = lookup
            lookup.add_done_callback(lambda done: self._lookup_done(slot, done))
            self.lookups_started += 1
        try:
            return await asyncio.shield(lookup)
        except Exception as exc:
            # One instance per caller: each request raises (and decorates) its own.
            raise copy.copy(exc) from exc

    def _lookup_done(self, slot: tuple[str, int], lookup: asyncio.Task[KeyIdentity]) -> None:
        if self._lookups.get(slot) is lookup:
            del self._lookups[slot]
        if not lookup.cancelled():
            lookup.exception()  # retrieved: every caller may have gone away meanwhile

    async def _look_up(self, full_key: str, digest: str, key_id: str,
                       client_of: Callable[[], str], generation: int) -> KeyIdentity:
        """Redis's cached identity, else auth's answer; kept in memory unless a revocation
        came since the check that asked (``generation``)."""
        # The Redis entry is named by the whole key's digest: only the key's holder finds it,
        # so a valid key works whatever failures its address (or its id) has piled up.
        identity = await cached_identity(self.redis, full_key)
        self.metrics.key_lookup("redis", identity is not None)
        if identity is None:
            client = client_of()
            await self._check_throttle(client, key_id)
            identity = await self._ask_auth(full_key, client, key_id)
        if self.generation == generation:
            self.cache.put(digest, identity)
        return identity

    async def _ask_auth(self, full_key: str, client: str, key_id: str) -> KeyIdentity:
        if not self.breaker.allow_request():
            return await self._emergency(full_key)
        try:
            identity = await self.auth.validate_api_key(full_key, timeout=AUTH_TIMEOUT_SECONDS)
        except LedgerError as exc:
            if exc.http_status >= 500:
                logger.warning("API key check failed, auth daemon: %s", exc.message)
                self.breaker.record_failure()
                return await self._emergency(full_key)
            self.breaker.record_success()  # auth answered: the key is bad, not auth
            await self._count_failure(client, key_id)
            raise
        self.breaker.record_success()
        return identity

    async def _emergency(self, full_key: str) -> KeyIdentity:
        identity = await emergency_identity(self.redis, full_key)
        if identity is None:
            raise UnavailableError(
                "the auth daemon is unavailable and this API key is not in the emergency"
                " cache; retry shortly", retry_after=max(1, round(self.breaker.cooldown_seconds)),
                service="the auth daemon")
        return identity

    async def _check_throttle(self, client: str, key_id: str) -> None:
        name = bus.auth_failures(client, key_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(name)
        pipe.ttl(name)
        count, ttl = await pipe.execute()
        if count is not None and int(count) >= self.failure_limit:
            raise RateLimitedError(
                "too many failed checks of this API key from this address; check the key and"
                " retry later", retry_after=max(1, int(ttl)))

    async def _count_failure(self, client: str, key_id: str) -> None:
        name = bus.auth_failures(client, key_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(name)
        pipe.expire(name, self.failure_window_seconds)
        await pipe.execute()

    async def listen_revocations(self) -> None:
        """Drop revoked key ids from memory as auth announces them; runs until cancelled."""
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(bus.KEY_REVOKED_CHANNEL)
                self.cache.clear()  # anything revoked while we were not listening goes too
                self.generation += 1
                self.subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = message["data"]
                    key_id = data.decode() if isinstance(data, bytes) else str(data)
                    self.generation += 1
                    dropped = self.cache.drop_key_id(key_id)
                    logger.debug("key %s revoked; dropped %d cached entries", key_id, dropped)
                    for listener in self.revocation_listeners:
                        listener(key_id)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.subscribed.clear()
                self.cache.clear()
                self.generation += 1
                logger.warning("lost the key revocation channel (%s); resubscribing", exc)
                await asyncio.sleep(RESUBSCRIBE_SECONDS)
            finally:
                await pubsub.aclose()
