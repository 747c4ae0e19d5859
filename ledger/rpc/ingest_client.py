"""``IngestClient``: the ingest daemon's RPCs as methods on core models."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.core.rpc_models import IngestRequest, IngestResult
from ledger.errors import BY_CODE, LedgerError
from ledger.proto import ingest_pb2, ingest_pb2_grpc
from ledger.rpc import convert
from ledger.rpc.channel import DaemonClient


class IngestClient(DaemonClient):
    """Queueing logs and reading the queue's depth (the ingest daemon)."""

    target = "ingest"
    stub_type = ingest_pb2_grpc.IngestServiceStub

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
        if len(answer.results) != len(requests):
            raise LedgerError(f"ingest answered {len(answer.results)} results for"
                              f" {len(requests)} requests")
        results: list[IngestResult | LedgerError] = []
        for result in answer.results:
            if result.error_code:
                error_class = BY_CODE.get(result.error_code, LedgerError)
                results.append(error_class(result.error_message or None,
                                           retry_after=result.retry_after or None))
            else:
                results.append(convert.ingest_result_from_proto(result.response))
        return results

    async def get_queue_depth(self, project_id: str) -> int:
        """Logs of the project accepted and not yet stored."""
        answer = await self.call(self.stub.GetQueueDepth,
                                 ingest_pb2.GetQueueDepthRequest(project_id=project_id))
        depth: int = answer.queue_depth
        return depth
