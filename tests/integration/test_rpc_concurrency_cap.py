"""Issue 9 item 6: a gRPC daemon serves a bounded number of calls at once.

Without ``maximum_concurrent_rpcs`` every call was accepted and held in the daemon's memory. Past
the cap gRPC refuses the call at once (RESOURCE_EXHAUSTED), which the client side turns into
``UnavailableError`` naming the daemon: the gateway's 503 with Retry-After, never a 500.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from ledger.errors import UnavailableError
from ledger.rpc.channel import HealthClient
from ledger.rpc.server import bind, create_server


async def test_calls_past_the_cap_are_refused_at_once_as_unavailable() -> None:
    token = secrets.token_urlsafe(16)
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow_checks() -> dict[str, str]:
        entered.set()
        await release.wait()
        return {"self": "ok"}

    server = create_server("ingest", token, slow_checks, max_concurrent_rpcs=1)
    port = bind(server, "127.0.0.1:0", "ingest")
    await server.start()
    client = HealthClient("ingest", f"127.0.0.1:{port}", token)
    try:
        first = asyncio.create_task(client.check_health(timeout=30))
        await entered.wait()  # the one allowed call is being served
        with pytest.raises(UnavailableError) as refused:
            await client.check_health(timeout=30)
        assert refused.value.service == "the ingest daemon"
        assert refused.value.retry_after == 1
        release.set()
        assert (await first).healthy
    finally:
        await client.close()
        await server.stop(None)
