"""Issue 9 item 10: the enqueue script runs once per request even when its reply is lost.

redis-py re-sends a command whose reply did not arrive (its default ``Retry``). For the enqueue
script that means the quota counted twice, the notifications sent twice and the logs queued
twice. The ingest daemon's client must never re-send: a lost reply is a 503, and the client's
retry (same ``log_id`` values) is the one place where a request is repeated.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis

from ledger.config import Settings
from ledger.errors import UnavailableError
from ledger.queue import names
from ledger.queue.scripts import ENQUEUE_MANY
from tests.ingest_support import log, running_ingest, send
from tests.lossy_proxy import LossyProxy


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


async def test_a_lost_enqueue_reply_is_a_503_and_the_logs_are_counted_once(
        settings: Settings, aredis: aioredis.Redis) -> None:
    target = urlsplit(str(settings.redis_url))
    project = str(uuid.uuid4())
    await aredis.script_load(ENQUEUE_MANY.lua)  # else the lost reply could be NOSCRIPT's
    body = {"logs": [log(i, log_id=str(uuid.uuid4())) for i in range(5)]}
    proxy = LossyProxy(target.hostname or "127.0.0.1", target.port or 6379, b"EVALSHA")
    async with proxy, running_ingest(
            settings, redis_url=_through(str(settings.redis_url), proxy.port),
            ingest_writers=0) as (_, client):
        with pytest.raises(UnavailableError):
            await send(client, project, body, daily_quota=1000)
        assert proxy.dropped == 1
        # The client's retry: the same logs again, answered this time.
        response = await send(client, project, body, daily_quota=1000)
        assert response.accepted == 5
    day = datetime.now(UTC).strftime("%Y%m%d")
    # Two requests reached Redis (the lost one and the retry), each run exactly once.
    assert proxy.forwarded == 2
    assert int(await aredis.get(names.daily_quota(project, day)) or 0) == 10
    assert await aredis.xlen(names.queue_stream(project)) == 2
