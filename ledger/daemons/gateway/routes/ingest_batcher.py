"""Coalesces concurrent ingest requests into one batch on the ingest stream ("natural batching").

Sending costs both daemons far more CPU than the few logs of a single-log request: under
load, most of the work would be the sending itself. So the gateway keeps at most
``max_in_flight`` batches unanswered per ingest process; a request that finds room is sent at
once, alone (no added latency when lightly loaded), and requests that arrive while the
batches are busy wait and leave together with the next one. The busier the gateway, the
bigger the batches; nobody waits on a timer. A batch is one message on the long-lived
``IngestStream`` to an ingest process (``ledger.rpc.ingest_stream``), not a call of its own.

Each request keeps its own answer: ingest validates and queues every request of a call on its
own (one Redis round trip for all of them) and returns one result per request, its response or
its error, which ``submit`` returns or raises for that request only.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import deque
from typing import TYPE_CHECKING

from ledger.core.api_keys import KeyIdentity
from ledger.core.rpc_models import IngestRequest, IngestResult, IngestShape
from ledger.errors import LedgerError, UnavailableError
from ledger.rpc.ingest_client import IngestClient

if TYPE_CHECKING:
    from ledger.daemons.gateway.state import Gateway

logger = logging.getLogger(__name__)

#: Requests per call: enough to absorb any burst one gateway process can parse meanwhile.
MAX_ITEMS = 256
#: Bytes of request bodies per call (well under gRPC's 64 MiB message cap).
MAX_BYTES = 4 * 1024 * 1024
#: Batches unanswered at once per ingest process (per stream). One keeps the batches as big
#: as the load makes them; more would only split the same requests into smaller batches.
MAX_IN_FLIGHT = 1
#: Request body bytes that may wait for a call: past it a request is refused at once (503)
#: instead of piling up in the gateway's memory while ingest is slow.
MAX_WAITING_BYTES = 64 * 1024 * 1024
#: Bodies up to this size (after decompression and mapping) are coalesced like single logs;
#: bigger ones are worth a call of their own.
COALESCE_MAX_BYTES = 64 * 1024

_Waiting = tuple[IngestRequest, "asyncio.Future[IngestResult]"]


class IngestBatcher:
    """Sends ingest requests through ``client``, several per call while calls are busy.

    Args:
        client: the gateway's gRPC client to the ingest daemon.
        max_items / max_bytes: the most requests, and request body bytes, of one call.
        max_in_flight: batches unanswered at once (default: ``MAX_IN_FLIGHT`` per ingest
            process); more requests wait for one of them to be answered.
    """

    def __init__(self, client: IngestClient, *, max_items: int = MAX_ITEMS,
                 max_bytes: int = MAX_BYTES, max_in_flight: int | None = None,
                 max_waiting_bytes: int = MAX_WAITING_BYTES) -> None:
        self._client = client
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._max_in_flight = (max_in_flight if max_in_flight is not None
                               else MAX_IN_FLIGHT * len(client.streams))
        self._max_waiting_bytes = max_waiting_bytes
        self._waiting: deque[_Waiting] = deque()
        self._waiting_bytes = 0
        self._calls: set[asyncio.Task[None]] = set()
        #: Batches sent and requests they carried (for tests and the bench); the most batches
        #: that were ever unanswered at once.
        self.calls_made = 0
        self.requests_sent = 0
        self.most_in_flight = 0

    async def submit(self, request: IngestRequest) -> IngestResult:
        """What ingest answered to ``request``.

        Raises:
            LedgerError: the error ingest gave for this request (invalid body, quota used up,
                queue full, ...), or ``UnavailableError`` when the call itself failed or too
                many requests already wait for ingest.
        """
        if self._waiting and self._waiting_bytes + len(request.body) > self._max_waiting_bytes:
            raise UnavailableError(
                f"{self._waiting_bytes} bytes of ingest requests already wait for the ingest"
                " daemon", retry_after=1, service="the ingest daemon")
        future: asyncio.Future[IngestResult] = (
            asyncio.get_running_loop().create_future())
        self._waiting.append((request, future))
        self._waiting_bytes += len(request.body)
        if len(self._calls) < self._max_in_flight:
            self._send_next()
        return await future

    def _send_next(self) -> None:
        """Send one batch with the requests waiting longest (up to the caps)."""
        batch: list[_Waiting] = []
        size = 0
        while self._waiting and len(batch) < self._max_items:
            request, future = self._waiting[0]
            if batch and size + len(request.body) > self._max_bytes:
                break
            self._waiting.popleft()
            self._waiting_bytes -= len(request.body)
            if future.done():  # its HTTP request was cancelled while it waited
                continue
            batch.append((request, future))
            size += len(request.body)
        if not batch:
            return
        self.calls_made += 1
        self.requests_sent += len(batch)
        call = asyncio.create_task(self._call(batch), name="gateway-ingest-call")
        self._calls.add(call)
        self.most_in_flight = max(self.most_in_flight, len(self._calls))
        call.add_done_callback(self._call_done)

    def _call_done(self, call: asyncio.Task[None]) -> None:
        self._calls.discard(call)
        if self._waiting:
            self._send_next()

    async def _call(self, batch: list[_Waiting]) -> None:
        try:
            results = await self._client.ingest_logs_stream([request for request, _ in batch])
        except LedgerError as exc:
            for _, future in batch:
                if not future.done():
                    # One instance per waiter: each request raises (and decorates) its own.
                    future.set_exception(copy.copy(exc))
            return
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(LedgerError("internal error"))
            if not isinstance(exc, Exception):
                raise
            logger.exception("gateway: a coalesced ingest call failed")
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, LedgerError):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def close(self) -> None:
        """Wait for the calls in flight (their requests are being answered)."""
        while self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)


async def forward_logs(gateway: Gateway, identity: KeyIdentity, shape: IngestShape,
                       body: bytes) -> IngestResult:
    """Send a native body (``single`` or ``batch``) of ``identity``'s project to ingest.

    What every ingest route does once it has native logs (its own, OTLP's or Sentry's mapped):
    a small body waits for the batcher's next call, a big one has a call of its own, and the
    gateway's log counters see the answer.
    """
    forwarded = IngestRequest(
        project_id=identity.project_id, shape=shape, body=body,
        retention_days=identity.retention_days, daily_quota=identity.daily_quota)
    if len(body) <= COALESCE_MAX_BYTES:
        response = await gateway.batcher.submit(forwarded)
    else:
        response = await gateway.ingest.ingest_logs(forwarded)
    gateway.metrics.count_logs(response.accepted, response.rejected)
    return response
