"""Each project's grouping setting (rules, in-app, merges) for ingest, cached briefly.

Read from the logs database at most once per project every ``ttl`` seconds, so a change made
through the API applies to new events within that time. The read is bounded: when PostgreSQL
is slow or down, ingest goes on with the last setting it read rather than waiting — accepting
logs must not depend on the database. A project whose setting was never read waits longer
(``first_timeout``), because the default in its place would group its events without the
project's rules; a failed read is retried after ``RETRY_SECONDS``, not after the whole ``ttl``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from psycopg_pool import AsyncConnectionPool

from ledger.core import grouping_store
from ledger.core.grouping_rules import DEFAULT_GROUPING, GroupingConfig

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 5.0
DEFAULT_TIMEOUT_SECONDS = 0.5
DEFAULT_FIRST_TIMEOUT_SECONDS = 3.0
RETRY_SECONDS = 1.0
#: Projects remembered at once; the least recently loaded ones are forgotten first.
MAX_PROJECTS = 10_000


class GroupingCache:
    """``await cache.get(project_id)`` → the project's ``GroupingConfig``."""

    def __init__(self, pool: AsyncConnectionPool | None, *, ttl: float = DEFAULT_TTL_SECONDS,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 first_timeout: float = DEFAULT_FIRST_TIMEOUT_SECONDS) -> None:
        self._pool = pool
        self._ttl = ttl
        self._timeout = timeout
        self._first_timeout = first_timeout
        # project → (monotonic time after which it is read again, setting)
        self._entries: dict[str, tuple[float, GroupingConfig]] = {}
        self._loading: dict[str, asyncio.Task[GroupingConfig]] = {}

    async def get(self, project_id: str) -> GroupingConfig:
        """The project's setting, from the cache when it is fresh."""
        entry = self._entries.get(project_id)
        now = time.monotonic()
        if entry is not None and now < entry[0]:
            return entry[1]
        if self._pool is None:
            return DEFAULT_GROUPING
        task = self._loading.get(project_id)
        if task is None:  # one read per project however many requests wait for it
            task = asyncio.create_task(self._load(project_id), name=f"grouping:{project_id}")
            self._loading[project_id] = task
            task.add_done_callback(lambda _: self._loading.pop(project_id, None))
        return await asyncio.shield(task)

    async def get_many(self, project_ids: Iterable[str]) -> dict[str, GroupingConfig]:
        """The settings of several projects, read concurrently."""
        wanted = list(dict.fromkeys(project_ids))
        found = await asyncio.gather(*(self.get(p) for p in wanted))
        return dict(zip(wanted, found, strict=True))

    def forget(self, project_id: str) -> None:
        """Drop a cached setting (the next event reads it again)."""
        self._entries.pop(project_id, None)

    async def _load(self, project_id: str) -> GroupingConfig:
        assert self._pool is not None
        previous = self._entries.get(project_id)
        ttl = self._ttl
        try:
            async with asyncio.timeout(self._timeout if previous else self._first_timeout):
                async with self._pool.connection() as conn:
                    config = await grouping_store.load_config(conn, project_id)
        except Exception as exc:  # a loop boundary: ingest goes on with what it knows
            logger.warning("ingest: grouping setting of project %s not read (%s); using %s",
                           project_id, exc or type(exc).__name__,
                           "the last one read" if previous else "the default")
            config = previous[1] if previous else DEFAULT_GROUPING
            ttl = min(ttl, RETRY_SECONDS)
        if len(self._entries) >= MAX_PROJECTS and project_id not in self._entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[project_id] = (time.monotonic() + ttl, config)
        return config
