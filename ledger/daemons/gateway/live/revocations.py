"""Open live streams end when their credentials stop working (issue 9, item 16).

A stream is authenticated once, when it opens; without this it would run for as long as the
client stays connected. Two ways a credential ends:

* an API key is revoked: auth announces it on ``bus.KEY_REVOKED_CHANNEL``; the key validator
  passes each revoked key id to ``key_revoked``, which closes that key's streams at once;
* an account session is logged out (or every session, on a password change): auth marks it in
  Redis (``bus.session_revoked``); ``run`` checks the sessions of open streams twice a second,
  in one pipeline, and closes those that were revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ledger import bus
from ledger.daemons.gateway.edge.account_sessions import AccountPrincipal
from ledger.daemons.gateway.edge.principal import ApiKeyPrincipal, Principal
from ledger.daemons.gateway.live.hub import Subscription

logger = logging.getLogger(__name__)

SESSION_CHECK_SECONDS = 0.5


class StreamCredentials:
    """The principal behind every open stream, to end the stream when it is revoked."""

    def __init__(self, redis: aioredis.Redis,
                 check_seconds: float = SESSION_CHECK_SECONDS) -> None:
        self._redis = redis
        self.check_seconds = check_seconds
        self._streams: dict[Subscription, Principal] = {}

    @contextlib.contextmanager
    def watch(self, principal: Principal, sub: Subscription) -> Iterator[None]:
        """Keep ``sub`` open only while ``principal`` is valid."""
        self._streams[sub] = principal
        try:
            yield
        finally:
            self._streams.pop(sub, None)

    def key_revoked(self, key_id: str) -> None:
        """Close every stream opened with API key ``key_id``."""
        for sub, principal in list(self._streams.items()):
            if isinstance(principal, ApiKeyPrincipal) and principal.identity.key_id == key_id:
                logger.info("live: ending a stream of revoked API key %s", key_id)
                sub.close()

    async def check_sessions(self) -> None:
        """Close the streams whose account session was logged out."""
        accounts = [(sub, p) for sub, p in self._streams.items()
                    if isinstance(p, AccountPrincipal)]
        if not accounts:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for _, principal in accounts:
                pipe.exists(bus.session_revoked(principal.account_id, principal.session_id))
            revoked = await pipe.execute()
        for (sub, principal), gone in zip(accounts, revoked, strict=True):
            if gone:
                logger.info("live: ending a stream of logged-out session %s",
                            principal.session_id)
                sub.close()

    async def run(self) -> None:
        """Check sessions until cancelled; a Redis failure is retried at the next tick."""
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                await self.check_sessions()
            except (RedisError, OSError) as exc:
                logger.warning("live: cannot check the sessions of open streams: %s", exc)
