"""The server side of ``IngestStream``: a gateway's coalesced batches, answered by id.

Each message is handled as an ``IngestLogsMany`` call would be, in a task of its own so that a
slow batch (a big body prepared in a thread) does not hold up the ones behind it. At most
``max_in_flight`` batches of one stream run at once: past that the stream is not read, so
gRPC's flow control holds the gateway's further writes back instead of this process buffering
them without bound.

Each batch is counted in the daemon's RPC metrics as ``IngestService/IngestStream/batch`` (the
stream itself is counted once, when it ends), so that a scrape shows the work as the unary
``IngestLogsMany`` calls it replaces were shown.

When the daemon stops, each stream stops reading, answers the batches it read, and ends (status
OK): the gateway fails the batches it wrote that were never read (nothing of them was queued)
and opens a new stream, to whichever process answers, for the next ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ledger.errors import LedgerError
from ledger.proto import ingest_pb2
from ledger.rpc.interceptors import CallObserver

logger = logging.getLogger(__name__)

#: Batches of one stream handled at once (a gateway keeps one or two unanswered).
MAX_IN_FLIGHT = 8
#: The name a stream's batches are counted under (``CallObserver``).
BATCH_RPC = "IngestService/IngestStream/batch"

Context = grpc.aio.ServicerContext[Any, Any]
#: What ``read()`` gives once the other side is done writing (not in grpc's type stubs).
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]
Many = Callable[[ingest_pb2.IngestLogsManyRequest], Awaitable[ingest_pb2.IngestLogsManyResponse]]


def _internal_error(count: int) -> ingest_pb2.IngestLogsManyResponse:
    result = ingest_pb2.IngestLogsResult(error_code=LedgerError.code,
                                         error_message="internal error")
    return ingest_pb2.IngestLogsManyResponse(results=[result] * count)


async def serve_stream(many: Many, context: Context, stopping: asyncio.Event, *,
                       max_in_flight: int = MAX_IN_FLIGHT,
                       observe: CallObserver | None = None) -> None:
    """Read batches from ``context`` and write each one's answer, until the gateway ends the
    stream or ``stopping`` is set; then finish the batches already read."""
    slots = asyncio.Semaphore(max_in_flight)
    write_lock = asyncio.Lock()
    running: set[asyncio.Task[None]] = set()

    async def answer(message: ingest_pb2.IngestStreamRequest) -> None:
        started, code = time.perf_counter(), "OK"
        try:
            try:
                response = await many(message.batch)
            except Exception:
                code = grpc.StatusCode.INTERNAL.name
                # IngestLogsMany answers each request's own errors; anything escaping it is a
                # bug. This batch is answered "internal error"; the stream and others go on.
                logger.exception("ingest: a batch of the ingest stream failed")
                response = _internal_error(len(message.batch.requests))
            async with write_lock:  # one write at a time on a stream
                await context.write(ingest_pb2.IngestStreamResponse(id=message.id,
                                                                    answer=response))
        finally:
            slots.release()
            if observe is not None:
                observe(BATCH_RPC, code, time.perf_counter() - started)

    stop = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            await slots.acquire()
            read = asyncio.ensure_future(context.read())
            if not read.done():
                await asyncio.wait((read, stop), return_when=asyncio.FIRST_COMPLETED)
            if not read.done():
                # Stopping: not cancelled (that would cancel the call and lose the answers
                # still to write); it ends with the call.
                read.add_done_callback(_forget)
                slots.release()
                break
            message = read.result()
            if message is EOF:
                slots.release()
                break
            task = asyncio.create_task(answer(message), name="ingest-stream-batch")
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running)
    finally:
        stop.cancel()
        for task in running:
            task.cancel()


def _forget(read: asyncio.Future[Any]) -> None:
    if not read.cancelled():
        read.exception()  # retrieved: the call ended under it, which is expected here
