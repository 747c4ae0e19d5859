"""What every fault test checks: sent = accepted = stored, nothing stored twice.

Each test sends logs with their own ``log_id`` (what an SDK does, so that a retried request is
the same logs again), counts what the gateway accepted with 202, then waits until PostgreSQL
holds exactly those ids, once each.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

from ledger.db.migrate import ensure_database, migrate
from ledger.embedded import EmbeddedPostgres
from ledger.errors import UnavailableError
from ledger.rpc.ingest_client import IngestClient
from tests.e2e.test_query_e2e import account as account
from tests.ingest_support import now_iso, send
from tests.waiting import wait_until_blocking


def logs(n: int, tag: str = "fault") -> list[dict[str, Any]]:
    """``n`` info logs, each with its own id; one in ten an exception."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        record: dict[str, Any] = {"log_id": str(uuid.uuid4()), "timestamp": now_iso(),
                                  "level": "info", "message": f"{tag} {i}"}
        if i % 10 == 0:
            record |= {"level": "error", "log_type": "exception", "error_type": "E",
                       "error_message": "boom"}
        out.append(record)
    return out


def stored(url: str, project_id: str) -> tuple[int, int]:
    """(rows, distinct ids) of the project's logs."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT id) FROM logs WHERE project_id = %s",
                           (project_id,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def stored_ids(url: str, project_id: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id::text FROM logs WHERE project_id = %s",
                            (project_id,)).fetchall()
    return {str(r[0]) for r in rows}


def wait_stored(url: str, project_id: str, expected: int, seconds: float = 60.0) -> None:
    """Until ``expected`` rows are stored (or the deadline: then the assertion says what)."""
    # Waiting ends at the count; the assertion then also says whether any row is doubled.
    with contextlib.suppress(AssertionError):
        wait_until_blocking(lambda: stored(url, project_id)[0] >= expected,
                            f"{expected} rows stored", timeout=seconds, interval=0.2)
    assert stored(url, project_id) == (expected, expected)


def post_batch(http: httpx.Client, key: str, batch: list[dict[str, Any]]) -> httpx.Response:
    return http.post("/api/v1/ingest/batch", headers={"X-API-Key": key}, json={"logs": batch})


@contextlib.contextmanager
def fault_dir() -> Iterator[Path]:
    """A folder outside pytest's temporary root that every user can traverse.

    The embedded PostgreSQL runs as the user ``pgserver`` when the tests run as root; pytest
    resets its own root to mode 0700 whenever another session starts (see test_up_orphans).
    """
    path = Path(tempfile.mkdtemp(prefix="ledger-faults-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def migrated_logs_database(server: EmbeddedPostgres) -> str:
    """A migrated logs database on ``server``; its URL."""
    url = server.url("ledger_logs")
    ensure_database(url)
    with psycopg.connect(url) as conn:
        migrate(conn, "logs")
    return url


async def send_until_accepted(client: IngestClient, project: str, body: dict[str, Any],
                              on_unavailable: Callable[[], None] = lambda: None,
                              seconds: float = 60.0) -> int:
    """What an SDK does: the same logs again after each 503, until accepted; how many."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            response = await send(client, project, body)
        except UnavailableError:
            assert time.monotonic() < deadline, "never accepted"
            on_unavailable()
            await asyncio.sleep(0.2)
            continue
        return int(response.accepted)
