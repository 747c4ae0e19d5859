"""``MetricsClient``: the query daemon's ``MetricsService`` as one typed method.

It rides the ``QueryClient``'s channel (one channel per target daemon); figures come back as
JSON bytes that the gateway passes through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.proto import metrics_pb2, metrics_pb2_grpc
from ledger.rpc.query_client import QueryClient


@dataclass(frozen=True, slots=True)
class MetricAnswer:
    json: bytes
    #: Whether the figure came from its Redis cache.
    cached: bool


class MetricsClient:
    def __init__(self, query: QueryClient) -> None:
        self._query = query
        self._stub: Any = metrics_pb2_grpc.MetricsServiceStub(query.channel)

    async def get_metric(self, project_id: str, name: str, params: dict[str, str], *,
                         daily_quota: int = 0) -> MetricAnswer:
        """Figure ``name`` of one project, with the query-string ``params`` as sent."""
        answer = await self._query.call(self._stub.GetMetric, metrics_pb2.GetMetricRequest(
            project_id=project_id, name=name, params=params, daily_quota=daily_quota))
        return MetricAnswer(bytes(answer.json), bool(answer.cached))
