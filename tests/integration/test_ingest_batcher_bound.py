"""Issue 9 item 6: the gateway's ingest waiting line is bounded.

While ingest is slow (here: a port that takes connections and never answers, like a hung
daemon), requests used to queue in the batcher without bound, each holding its body. Past
``max_waiting_bytes`` a request is refused at once with 503 naming ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket

import pytest

from ledger.core.rpc_models import IngestRequest
from ledger.daemons.gateway.routes.ingest_batcher import IngestBatcher
from ledger.errors import UnavailableError
from ledger.rpc.ingest_client import IngestClient


async def test_requests_past_the_waiting_bound_are_refused_at_once() -> None:
    # A socket that listens and never accepts: the kernel completes the handshake and
    # buffers what the client sends; no answer ever comes.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = IngestClient(f"127.0.0.1:{port}", secrets.token_urlsafe(8), timeout=60)
    batcher = IngestBatcher(client, max_in_flight=1, max_waiting_bytes=100)

    def request(size: int) -> IngestRequest:
        return IngestRequest("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "single",
                             b"x" * size, 90, 0)

    try:
        in_flight = asyncio.create_task(batcher.submit(request(80)))  # sent at once: hangs
        waiting = asyncio.create_task(batcher.submit(request(60)))  # waits for the call
        await asyncio.sleep(0)
        assert batcher.calls_made == 1
        with pytest.raises(UnavailableError) as refused:
            await batcher.submit(request(50))  # 60 + 50 > 100
        assert refused.value.service == "the ingest daemon"
        assert refused.value.retry_after == 1
    finally:
        for task in (in_flight, waiting):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, UnavailableError):
                await task
        await client.close()
        listener.close()
