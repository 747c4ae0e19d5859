"""Ingest end to end: real `ledger serve auth|ingest|gateway` processes, real HTTP, real rows."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from ledger.config import Settings
from tests.e2e.conftest import SharedStack, shared_test, wait_queue_drained
from tests.stack import Stack

pytestmark = pytest.mark.e2e

LEVELS = ("debug", "info", "warning", "error", "critical")
TYPES = ("console", "logger", "network", "database", "custom")


def make_logs(count: int, start: datetime) -> list[dict[str, Any]]:
    logs: list[dict[str, Any]] = []
    for i in range(count):
        record: dict[str, Any] = {
            "log_id": str(uuid.uuid4()),
            "timestamp": (start + timedelta(milliseconds=i)).isoformat(),
            "level": LEVELS[i % 5],
            "log_type": TYPES[i % 5],
            "importance": ("critical", "high", "standard", "low")[i % 4],
            "message": f"message {i} ünïcödé",
            "environment": "e2e",
            "release": f"1.{i % 3}.0",
            "sdk_version": "0.1.0",
            "platform": "python",
            "platform_version": "3.11",
            "attributes": {"i": i, "nested": {"even": i % 2 == 0}},
            "trace_id": f"{i:032x}"[-32:].replace("0", "a", 1),
            "span_id": f"{i + 1:016x}",
            "newer_sdk_field": "ignored",
        }
        if i % 10 == 0:
            record |= {"log_type": "exception", "level": "error", "error_type": "KeyError",
                       "error_message": f"missing key {i}",
                       "stack_trace": 'File "app/shop.py", line 3, in checkout\nKeyError'}
        logs.append(record)
    return logs


@pytest.fixture
def stack(shared_stack: SharedStack, request: pytest.FixtureRequest) -> tuple[Stack, str]:
    """The module's auth, ingest and gateway, and the key of a project of this test's own."""
    shared_test(shared_stack, request)
    key, _ = shared_stack.new_project()
    return shared_stack.stack, key


def stored(settings: Settings, ids: list[str], deadline_seconds: float) -> list[dict[str, Any]]:
    """The rows of ``ids``, polled until all are there or the deadline passes."""
    deadline = time.monotonic() + deadline_seconds
    with psycopg.connect(str(settings.logs_database_url), autocommit=True,
                         row_factory=dict_row) as conn:
        while True:
            rows = conn.execute("SELECT * FROM logs WHERE id = ANY(%s::uuid[])",
                                (ids,)).fetchall()
            if len(rows) >= len(ids) or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)


def test_a_batch_of_1000_is_stored_field_for_field(stack: tuple[Stack, str]) -> None:
    running, key = stack
    sent = make_logs(1000, datetime.now(UTC) - timedelta(minutes=1))
    response = httpx.post(f"{running.url}/api/v1/ingest/batch", json={"logs": sent},
                          headers={"X-API-Key": key}, timeout=30)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1000, "rejected": 0, "errors": []}

    rows = stored(running.settings, [r["log_id"] for r in sent], deadline_seconds=10)
    assert len(rows) == 1000
    by_id = {str(row["id"]): row for row in rows}
    for record in sent:
        row = by_id[record["log_id"]]
        assert row["timestamp"] == datetime.fromisoformat(record["timestamp"])
        for field in ("level", "log_type", "importance", "message", "environment", "release",
                      "sdk_version", "platform", "platform_version", "trace_id", "span_id",
                      "attributes"):
            assert row[field] == record[field], field
        for field in ("error_type", "error_message", "stack_trace"):
            assert row[field] == record.get(field), field
        assert (row["error_fingerprint"] is not None) == (record["level"] in ("error",
                                                                              "critical"))
        assert row["ingested_at"] >= row["timestamp"]

    # Sent again (a client retry after a timeout): stored once.
    again = httpx.post(f"{running.url}/api/v1/ingest/batch", json={"logs": sent[:10]},
                       headers={"X-API-Key": key}, timeout=30)
    assert again.status_code == 202
    wait_queue_drained(running.url, key, timeout=10)
    assert len(stored(running.settings, [r["log_id"] for r in sent[:10]], 0)) == 10


def test_sigterm_lets_an_in_flight_request_finish_then_exits_cleanly(
    stack: tuple[Stack, str],
) -> None:
    running, key = stack
    body = httpx.Request("POST", "/", json={"logs": make_logs(200, datetime.now(UTC))}).content
    first_half_sent = threading.Event()
    release = threading.Event()
    result: dict[str, Any] = {}

    def chunks() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        first_half_sent.set()
        release.wait(10)
        yield body[len(body) // 2:]

    def send() -> None:
        try:
            result["response"] = httpx.post(
                f"{running.url}/api/v1/ingest/batch", content=chunks(), timeout=30,
                headers={"X-API-Key": key, "Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            result["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    assert first_half_sent.wait(10)
    time.sleep(0.2)  # let the gateway read the headers: the request is now in flight
    gateway = running.daemons["gateway"]
    gateway.proc.terminate()
    time.sleep(0.2)
    release.set()
    sender.join(15)
    assert "error" not in result, result
    assert result["response"].status_code == 202, result["response"].text
    assert gateway.proc.wait(15) == 0
    log = gateway.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.url}/health", timeout=2)
