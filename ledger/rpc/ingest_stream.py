"""The gateway's long-lived ``IngestStream`` to one ingest process: coalesced requests in, their
answers out, matched by id.

A unary gRPC call costs both processes a call object, metadata, the internal-token check and a
deadline timer, whatever it carries; a message on an open stream costs a frame. So each gateway
keeps one stream open per ingest process and sends every coalesced batch (what one
``IngestLogsMany`` call would carry) as one message on it, tagged with an id; ingest answers
each with the same id, in whatever order its batches finish.

Failure is per stream and loud: when the stream ends (ingest stopped, was killed, the
connection broke, whatever status gRPC gives for it) or a batch is not answered within
``timeout`` (a hung ingest), every batch still waiting on it fails with ``UnavailableError``
naming the ingest daemon (the gateway's 503), never a hang, and the stream is dropped. The
next batch opens a new one, so the gateway is back as soon as ingest is. A batch that failed
this way may or may not have been queued (its answer was lost): the client's retry carries the
same log ids, which the writers store once.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from ledger.errors import LedgerError, UnavailableError
from ledger.proto import ingest_pb2, ingest_pb2_grpc
from ledger.rpc.status import from_rpc_error

logger = logging.getLogger(__name__)

#: Retry-After of a batch lost with its stream: a restarted ingest is back within seconds.
LOST_RETRY_SECONDS = 1
#: A stream that just failed is not reopened before this long while another stream is open:
#: the batches go to the other ingest processes instead of failing one by one here.
REOPEN_AFTER_SECONDS = 1.0

_Answer = ingest_pb2.IngestLogsManyResponse
#: What ``read()`` gives once the server ended the stream (not in grpc's type stubs).
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]


class _Session:
    """One open ``IngestStream`` call, its batches waiting for an answer and their timers."""

    def __init__(self, call: Any, service: str, on_fail: Callable[[], None]) -> None:
        self.call = call
        self.service = service
        self._on_fail = on_fail
        self.pending: dict[int, tuple[asyncio.Future[_Answer], asyncio.TimerHandle]] = {}
        self.write_lock = asyncio.Lock()
        self.failed: LedgerError | None = None
        self.reader = asyncio.create_task(self._read(), name="gateway-ingest-stream-reader")

    async def _read(self) -> None:
        try:
            while True:
                message = await self.call.read()
                if message is EOF:
                    self.fail(UnavailableError(
                        f"{self.service} ended the stream (stopping?); retry the request",
                        retry_after=LOST_RETRY_SECONDS, service=self.service))
                    return
                waiter = self.pending.pop(message.id, None)
                if waiter is None:  # answered after its timeout: already failed
                    continue
                future, timer = waiter
                timer.cancel()
                if not future.done():
                    future.set_result(message.answer)
        except grpc.aio.AioRpcError as exc:
            self.fail(_stream_error(exc, self.service))
        except asyncio.CancelledError:
            self.fail(UnavailableError(f"the stream to {self.service} was closed",
                                       retry_after=LOST_RETRY_SECONDS, service=self.service))
            raise

    def fail(self, error: LedgerError) -> None:
        """End this session: every batch still waiting gets (its own copy of) ``error``."""
        if self.failed is None:
            self.failed = error
            self.call.cancel()
            self._on_fail()
        waiting, self.pending = self.pending, {}
        for future, timer in waiting.values():
            timer.cancel()
            if not future.done():
                future.set_exception(_copy(error))

    def timed_out(self, seconds: float) -> None:
        # One batch unanswered this long: ingest is hung or overwhelmed, and the batches
        # behind it on this stream would wait as long. Fail them all; the next batch reopens.
        self.fail(UnavailableError(f"{self.service} did not answer within {seconds:g} s",
                                   retry_after=LOST_RETRY_SECONDS, service=self.service))


def _stream_error(exc: grpc.aio.AioRpcError, service: str) -> LedgerError:
    """What the batches waiting on a stream that ended with ``exc`` fail with.

    A batch's own refusal (a bad body, the quota) comes back in its answer, not as the
    stream's status. A status that carries a Ledger error (a wrong internal token, say) keeps
    its meaning. Any other status (INTERNAL or UNKNOWN from a connection torn mid-frame when
    ingest is killed, or from ingest's stream handler failing) means the stream broke before
    these batches were answered. It is not an error in any of them, so they fail like any
    lost stream: a 503 the client retries, with the same log ids stored once. A handler that
    fails this way again and again is in ingest's log and in this warning.
    """
    error = from_rpc_error(exc, "ingest")
    if type(error) is not LedgerError:
        return error
    logger.warning("the stream to %s broke: %s %s", service, exc.code().name, exc.details())
    return UnavailableError(
        f"the stream to {service} broke ({exc.code().name.lower()}); retry the request",
        retry_after=LOST_RETRY_SECONDS, service=service)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _copy(error: LedgerError) -> LedgerError:
    # One instance per waiter: each HTTP request raises (and decorates) its own.
    return copy.copy(error)


class IngestStream:
    """Batches to one ingest process over one stream, reopened after it fails.

    Args:
        channel: a channel to that one process (pick-first: it connects when a stream opens).
        metadata: the internal token.
        timeout: seconds a batch may wait for its answer.
        addr: the process's address (for messages).
    """

    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], *,
                 timeout: float, addr: str) -> None:
        # Any: the generated stub types the call as taking a request iterator; the aio
        # reader/writer style used here takes none.
        self._stub: Any = ingest_pb2_grpc.IngestServiceStub(channel)
        self._metadata = metadata
        self.timeout = timeout
        self.addr = addr
        self.service = "the ingest daemon"
        self._session: _Session | None = None
        self._ids = itertools.count(1)
        #: When the last session failed (monotonic), for ``usable``.
        self.failed_at = 0.0
        #: Streams opened so far (for tests: a reconnect opens one more).
        self.opened = 0

    @property
    def in_flight(self) -> int:
        """Batches sent on the open stream and not answered yet."""
        return len(self._session.pending) if self._session is not None else 0

    def usable(self, now: float) -> bool:
        """Open, or failed long enough ago to be worth reopening."""
        session = self._session
        if session is not None and session.failed is None:
            return True
        return now - self.failed_at >= REOPEN_AFTER_SECONDS

    def _failed(self) -> None:
        self.failed_at = time.monotonic()

    def _open(self) -> _Session:
        session = self._session
        if session is not None and session.failed is None:
            return session
        # No deadline: the stream lives as long as both processes; each batch has its own.
        call = self._stub.IngestStream(metadata=self._metadata)
        self._session = session = _Session(call, self.service, self._failed)
        self.opened += 1
        return session

    async def send(self, batch: ingest_pb2.IngestLogsManyRequest) -> _Answer:
        """Ingest's answer to ``batch``.

        Raises:
            LedgerError: the stream failed before the answer came (``UnavailableError`` when
                ingest stopped, broke or did not answer in time), or ingest refused the stream
                itself (a wrong token).
        """
        session = self._open()
        batch_id = next(self._ids)
        future: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        # Its error is always taken by this send, but maybe after the loop ended (a write
        # stuck on a dead connection when the gateway shuts down): no "never retrieved" noise.
        future.add_done_callback(_retrieved)
        timer = asyncio.get_running_loop().call_later(self.timeout, session.timed_out,
                                                      self.timeout)
        session.pending[batch_id] = (future, timer)
        try:
            async with session.write_lock:  # one write at a time on a stream
                await session.call.write(ingest_pb2.IngestStreamRequest(id=batch_id,
                                                                        batch=batch))
        except grpc.aio.AioRpcError as exc:
            session.fail(_stream_error(exc, self.service))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # Not this task: gRPC raises it in a write on a call that ``fail`` cancelled
            # meanwhile; the batch's future already holds the error.
            session.fail(UnavailableError(f"the stream to {self.service} was closed",
                                          retry_after=LOST_RETRY_SECONDS, service=self.service))
        except asyncio.InvalidStateError:  # the call ended meanwhile: the reader tells why
            await asyncio.wait([session.reader], timeout=1.0)
            session.fail(UnavailableError(f"the stream to {self.service} ended",
                                          retry_after=LOST_RETRY_SECONDS, service=self.service))
        return await future

    async def close(self) -> None:
        """Cancel the stream; batches still waiting fail with ``UnavailableError``."""
        session, self._session = self._session, None
        if session is not None:
            session.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session.reader
            # Let the senders whose batches just failed take their errors before the loop ends.
            await asyncio.sleep(0)
