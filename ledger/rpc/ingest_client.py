"""``IngestClient``: the ingest daemon's RPCs as methods on core models."""

from __future__ import annotations

import time
from collections.abc import Sequence

import grpc

from ledger.core.rpc_models import IngestRequest, IngestResult
from ledger.errors import BY_CODE, LedgerError
from ledger.proto import ingest_pb2, ingest_pb2_grpc
from ledger.rpc import convert
from ledger.rpc.channel import CallGuard, DaemonClient, channel_options
from ledger.rpc.ingest_stream import IngestStream


class IngestClient(DaemonClient):
    """Queueing logs and reading the queue's depth (the ingest daemon)."""

    target = "ingest"
    stub_type = ingest_pb2_grpc.IngestServiceStub

    def __init__(self, addr: str, token: str, *, timeout: float = 10.0,
                 guard: CallGuard | None = None) -> None:
        super().__init__(addr, token, timeout=timeout, guard=guard)
        # One stream per ingest process: a stream lives on one connection, so over the
        # round-robin channel of an address list every batch would go to one process. Each
        # address of a list gets a channel of its own (pick-first) for its stream, and
        # ``pick_stream`` spreads the batches over them.
        parts = [part.strip() for part in addr.split(",") if part.strip()] or [addr]
        self._stream_channels = ([grpc.aio.insecure_channel(part, options=channel_options())
                                  for part in parts] if len(parts) > 1 else [])
        channels = self._stream_channels or [self.channel]
        self.streams = [IngestStream(channel, self._metadata, timeout=timeout, addr=part)
                        for channel, part in zip(channels, parts, strict=True)]
        self._next_stream = 0

    async def ingest_logs(self, request: IngestRequest) -> IngestResult:
        """Validate and queue one request's logs."""
        answer = await self.call(self.stub.IngestLogs, convert.ingest_request_to_proto(request))
        return convert.ingest_result_from_proto(answer)

    async def ingest_logs_many(
        self, requests: Sequence[IngestRequest],
    ) -> list[IngestResult | LedgerError]:
        """Several requests in one call; each keeps its own answer: its result or its error.

        Raises:
            LedgerError: the call itself failed (no request was answered), or ingest answered
                a different number of results than requests.
        """
        answer = await self.call(self.stub.IngestLogsMany, ingest_pb2.IngestLogsManyRequest(
            requests=[convert.ingest_request_to_proto(r) for r in requests]))
        return _results(answer, len(requests))

    def pick_stream(self) -> IngestStream:
        """The stream for the next batch: the least busy of those open (or worth reopening),
        taking turns among equals; when every one failed just now, the next in turn anyway
        (reopening it is how the gateway notices that ingest is back)."""
        streams = self.streams
        if len(streams) == 1:
            return streams[0]
        now = time.monotonic()
        start = self._next_stream
        self._next_stream = (start + 1) % len(streams)
        best: IngestStream | None = None
        for offset in range(len(streams)):
            stream = streams[(start + offset) % len(streams)]
            if stream.usable(now) and (best is None or stream.in_flight < best.in_flight):
                best = stream
        return best if best is not None else streams[start]

    async def ingest_logs_stream(
        self, requests: Sequence[IngestRequest], stream: IngestStream | None = None,
    ) -> list[IngestResult | LedgerError]:
        """What ``ingest_logs_many`` answers, sent as one message on a long-lived stream.

        Raises:
            LedgerError: the stream failed before the answer came (``UnavailableError``
                naming the ingest daemon), or ingest answered a different number of results
                than requests.
        """
        chosen = stream or self.pick_stream()
        answer = await chosen.send(ingest_pb2.IngestLogsManyRequest(
            requests=[convert.ingest_request_to_proto(r) for r in requests]))
        return _results(answer, len(requests))

    async def get_queue_depth(self, project_id: str) -> int:
        """Logs of the project accepted and not yet stored."""
        answer = await self.call(self.stub.GetQueueDepth,
                                 ingest_pb2.GetQueueDepthRequest(project_id=project_id))
        depth: int = answer.queue_depth
        return depth

    async def close(self) -> None:
        for stream in self.streams:
            await stream.close()
        for channel in self._stream_channels:
            await channel.close(grace=None)
        await super().close()


def _results(answer: ingest_pb2.IngestLogsManyResponse,
             expected: int) -> list[IngestResult | LedgerError]:
    """Each request's result or error, from one answer to ``expected`` requests."""
    if len(answer.results) != expected:
        raise LedgerError(f"ingest answered {len(answer.results)} results for"
                          f" {expected} requests")
    results: list[IngestResult | LedgerError] = []
    for result in answer.results:
        if result.error_code:
            error_class = BY_CODE.get(result.error_code, LedgerError)
            results.append(error_class(result.error_message or None,
                                       retry_after=result.retry_after or None))
        else:
            results.append(convert.ingest_result_from_proto(result.response))
    return results
