"""``QueryService``: validated reads of logs and error groups, bound to the caller's projects.

The gateway passes the projects the caller may read; everything here filters by them, so an id
from another project is NOT_FOUND exactly like an id that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
import psycopg
import redis.asyncio as aioredis
import redis.exceptions
from psycopg_pool import AsyncConnectionPool

from ledger import bus
from ledger.core import error_groups, grouping_store, log_search
from ledger.errors import InvalidInputError, LedgerError, UnavailableError
from ledger.proto import query_pb2, query_pb2_grpc

logger = logging.getLogger(__name__)

#: How long a counted total is reused by later pages of the same filters. Short: the count is
#: a hint for paging UIs, and new logs keep arriving.
TOTAL_CACHE_SECONDS = 30
#: How long a page waits for its count once the rows are ready. A count still running then is
#: not waited for: the answer carries a lower bound (total_exact=false) and the count finishes
#: in the background for the next pages.
COUNT_GRACE_SECONDS = 0.02

Context = grpc.aio.ServicerContext[Any, Any]


def _uuid(name: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInputError(f"{name} must be a UUID, got {value[:64]!r}") from None


def _uuids(name: str, values: Iterable[str]) -> list[str]:
    return [_uuid(name, v) for v in values]


@dataclass
class _SharedCount:
    """A running count and how many requests use it."""

    task: asyncio.Task[tuple[int, bool]]
    users: int = 0

    def leave(self, *, cancel_if_unused: bool) -> None:
        self.users -= 1
        if cancel_if_unused and self.users == 0 and not self.task.done():
            self.task.cancel()


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    """Implements ``ledger.v1.QueryService`` over one logs pool and one Redis client."""

    def __init__(self, pool: AsyncConnectionPool, redis: aioredis.Redis,
                 default_retention_days: int = 90,
                 count_grace_seconds: float = COUNT_GRACE_SECONDS, *,
                 write_pool: AsyncConnectionPool | None = None) -> None:
        """``pool`` serves the reads (a replica's, with LEDGER_QUERY_DATABASE_URL), and
        ``write_pool`` (default: ``pool``) the one write, a group's status, on the primary."""
        self._pool = pool
        self._write_pool = write_pool or pool
        self._redis = redis
        self._default_retention_days = default_retention_days
        self._count_grace = count_grace_seconds
        self._counts: dict[str, _SharedCount] = {}

    @contextlib.asynccontextmanager
    async def _connection(self, *, write: bool = False,
                          ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with (self._write_pool if write else self._pool).connection() as conn:
                yield conn
        except psycopg.errors.QueryCanceled as exc:
            raise UnavailableError(
                "the query took too long: narrow the period (period=last24h, periodFrom) or add"
                " filters (level, log_type, environment)"
            ) from exc
        except psycopg.OperationalError as exc:
            raise UnavailableError("the logs database is unavailable; try again shortly") from exc

    # -- logs -----------------------------------------------------------------------------------

    async def ListLogs(self, request: query_pb2.ListLogsRequest,
                       context: Context) -> query_pb2.ListLogsResponse:
        project_id = _uuid("project_id", request.project_id)
        query = log_search.parse_log_query(
            dict(request.params), project_id=project_id,
            retention_days=request.retention_days or self._default_retention_days,
            errors_only=request.errors_only,
        )
        cached = await self._cached_total(query)
        counting = None if cached is not None else self._join_count(query)
        moot = True  # the count is of no more use to this request (unless it waits for it)
        try:
            async with self._connection() as conn:
                page = await log_search.fetch_page(conn, query)
            moot = page.total is not None
            if page.total is not None:
                total, exact = page.total, True
                await self._store_total(query, total, exact)
            elif cached is not None:
                total, exact = cached
            else:
                assert counting is not None
                try:
                    total, exact = await asyncio.wait_for(asyncio.shield(counting.task),
                                                          self._count_grace)
                except (TimeoutError, LedgerError, psycopg.Error):
                    # Answer now with what the page proves (a lower bound); the count goes on
                    # and fills the cache for the next pages of this walk.
                    total, exact = query.offset + page.count + int(page.has_more), False
        finally:
            if counting is not None:
                counting.leave(cancel_if_unused=moot)
        return query_pb2.ListLogsResponse(
            logs_json=page.logs_json, count=page.count, total=total, total_exact=exact,
            has_more=page.has_more, next_cursor=page.next_cursor or "",
        )

    def _join_count(self, query: log_search.LogQuery) -> _SharedCount:
        """The count of ``query``'s rows, shared by every request for the same filters.

        Started in parallel with the page (a cold count can cost more than the page), and only
        once per project and filters at a time: a burst of identical reads runs one count.
        """
        key = bus.query_total(query.project_id, query.digest)
        shared = self._counts.get(key)
        if shared is None:
            task = asyncio.create_task(self._count_and_store(query), name="query-count")
            shared = self._counts[key] = _SharedCount(task)
            task.add_done_callback(lambda done: self._count_done(key, done))
        shared.users += 1
        return shared

    async def _count_and_store(self, query: log_search.LogQuery) -> tuple[int, bool]:
        async with self._connection() as conn:
            total, exact = await log_search.count_matching(conn, query)
        await self._store_total(query, total, exact)
        return total, exact

    def _count_done(self, key: str, task: asyncio.Task[tuple[int, bool]]) -> None:
        shared = self._counts.get(key)
        if shared is not None and shared.task is task:
            del self._counts[key]
        if not task.cancelled() and task.exception() is not None:
            logger.warning("query: counting a total failed: %s", task.exception())

    async def close(self) -> None:
        """Cancel counts still running in the background (daemon shutdown)."""
        tasks = [shared.task for shared in self._counts.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _cached_total(self, query: log_search.LogQuery) -> tuple[int, bool] | None:
        try:
            raw = await self._redis.get(bus.query_total(query.project_id, query.digest))
        except (redis.exceptions.RedisError, OSError):
            logger.warning("query: Redis unavailable; counting totals without the cache")
            return None
        if not raw:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        total, _, exact = text.partition(":")
        return int(total), exact == "1"

    async def _store_total(self, query: log_search.LogQuery, total: int, exact: bool) -> None:
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await self._redis.set(bus.query_total(query.project_id, query.digest),
                                  f"{total}:{int(exact)}", ex=TOTAL_CACHE_SECONDS)

    async def GetLog(self, request: query_pb2.GetLogRequest,
                     context: Context) -> query_pb2.GetLogResponse:
        project_ids = _uuids("project_ids", request.project_ids)
        async with self._connection() as conn:
            row = await log_search.fetch_log(conn, project_ids, request.log_id)
        return query_pb2.GetLogResponse(log_json=orjson.dumps(row))

    # -- error groups ---------------------------------------------------------------------------

    async def ListErrorGroups(self, request: query_pb2.ListErrorGroupsRequest,
                              context: Context) -> query_pb2.ListErrorGroupsResponse:
        project_id = _uuid("project_id", request.project_id)
        query = error_groups.parse_group_query(dict(request.params), project_id=project_id)
        async with self._connection() as conn:
            groups, total, has_more = await error_groups.list_groups(conn, query)
        return query_pb2.ListErrorGroupsResponse(
            groups_json=orjson.dumps(groups), total=total, has_more=has_more)

    async def GetErrorGroup(self, request: query_pb2.GetErrorGroupRequest,
                            context: Context) -> query_pb2.GetErrorGroupResponse:
        project_ids = _uuids("project_ids", request.project_ids)
        async with self._connection() as conn:
            group = await grouping_store.group_with_merges(conn, project_ids, request.group_id)
        return query_pb2.GetErrorGroupResponse(group_json=orjson.dumps(group))

    async def UpdateErrorGroupStatus(
        self, request: query_pb2.UpdateErrorGroupStatusRequest, context: Context,
    ) -> query_pb2.UpdateErrorGroupStatusResponse:
        project_ids = _uuids("project_ids", request.project_ids)
        async with self._connection(write=True) as conn:
            group = await error_groups.set_status(
                conn, project_ids, request.group_id, request.status,
                request.resolved_in_release or None)
        return query_pb2.UpdateErrorGroupStatusResponse(group_json=orjson.dumps(group))
