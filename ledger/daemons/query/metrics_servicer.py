"""``MetricsService``: the figures of ``/api/v1/metrics/*`` for one project the gateway vetted.

Rollup reads go to PostgreSQL; the dashboard figures come from their Redis caches (kept warm by
analytics) and are computed and cached here on a miss, so an answer is never empty.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import orjson
import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from ledger.core import metrics
from ledger.errors import InvalidInputError, UnavailableError
from ledger.proto import metrics_pb2, metrics_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
NAMES = ("aggregated", "bottleneck", *metrics.CACHED, "usage")


class MetricsServicer(metrics_pb2_grpc.MetricsServiceServicer):
    def __init__(self, pool: AsyncConnectionPool, redis: aioredis.Redis) -> None:
        self._pool = pool
        self._redis = redis

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.errors.QueryCanceled as exc:
            raise UnavailableError("the metrics query took too long: narrow the period") from exc
        except psycopg.OperationalError as exc:
            raise UnavailableError("the logs database is unavailable; try again shortly") from exc

    async def GetMetric(self, request: metrics_pb2.GetMetricRequest,
                        context: Context) -> metrics_pb2.GetMetricResponse:
        try:
            project_id = str(uuid.UUID(request.project_id))
        except ValueError:
            raise InvalidInputError("project_id must be a UUID") from None
        name, params, now = request.name, dict(request.params), datetime.now(UTC)
        if name not in NAMES:
            raise InvalidInputError(f"unknown metric {name!r}; one of {', '.join(NAMES)}")
        if name in ("aggregated", "bottleneck"):
            read = metrics.aggregated if name == "aggregated" else metrics.bottleneck
            async with self._connection() as conn:
                body = orjson.dumps(await read(conn, project_id, params, now))
            return metrics_pb2.GetMetricResponse(json=body, cached=False)
        extra = sorted(set(params) - {"project_id"})
        if extra:
            raise InvalidInputError(f"unknown query parameter {extra[0]!r}; /metrics/{name}"
                                    " takes only project_id")
        if name == "usage":
            figures = await metrics.usage(self._redis, project_id, request.daily_quota, now)
            return metrics_pb2.GetMetricResponse(json=orjson.dumps(figures), cached=False)
        body, hit = await metrics.cached(self._connection, self._redis, project_id, name, now)
        return metrics_pb2.GetMetricResponse(json=body, cached=hit)
