"""What every fault test checks: sent = accepted = stored, nothing stored twice.

Each test sends logs with their own ``log_id`` (what an SDK does, so that a retried request is
the same logs again), counts what the gateway accepted with 202, then waits until PostgreSQL
holds exactly those ids, once each.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import psycopg

from tests.e2e.test_query_e2e import account as account
from tests.ingest_support import now_iso


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
    deadline = time.monotonic() + seconds
    while stored(url, project_id)[0] < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored(url, project_id) == (expected, expected)


def post_batch(http: httpx.Client, key: str, batch: list[dict[str, Any]]) -> httpx.Response:
    return http.post("/api/v1/ingest/batch", headers={"X-API-Key": key}, json={"logs": batch})
