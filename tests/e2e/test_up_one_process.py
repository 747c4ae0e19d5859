"""`ledger up --one-process` (the default) on running PostgreSQL and Redis: one process serves
ingest, the query daemon reads back, the live stream delivers, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.config import Settings
from ledger.sse_client import EventSource, ServerEvent
from tests.e2e.test_up import KEY, UpProcess
from tests.ports import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def _up_env(settings: Settings) -> dict[str, str]:
    """The test's databases and Redis db (``UpProcess`` places the internal ports)."""
    return {"LEDGER_AUTH_DATABASE_URL": str(settings.auth_database_url),
            "LEDGER_LOGS_DATABASE_URL": str(settings.logs_database_url),
            "LEDGER_REDIS_URL": str(settings.redis_url)}


async def _live_error(url: str, key: str, marker: str) -> dict[str, object]:
    """Open the live stream, ingest one error once it is connected, return what it delivers."""
    source = EventSource(f"{url}/api/v1/notifications/stream", headers={"X-API-Key": key})
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        async for item in source.stream():
            if not isinstance(item, ServerEvent):
                continue
            if item.event == "connected":
                answer = await http.post(
                    "/api/v1/ingest/single", headers={"X-API-Key": key},
                    json={"timestamp": datetime.now(UTC).isoformat(), "level": "error",
                          "message": marker})
                assert answer.status_code == 202, answer.text
            elif item.event == "error_notification" and marker in item.data:
                event: dict[str, object] = item.json()
                return event
    raise AssertionError("the live stream ended")


async def test_one_process_serves_ingest_query_and_live(settings: Settings,
                                                        tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = UpProcess(tmp_path, port, "--one-process", env=_up_env(settings))
    try:
        banner = await asyncio.to_thread(up.read_until, "Press Ctrl-C to stop", 120)
        assert "Ledger is ready" in banner
        match = KEY.search(banner)
        assert match, banner
        key = match.group(1)
        state = json.loads((tmp_path / ".ledger" / "state.json").read_text())
        assert "daemons" not in state  # no child daemons to find again after a crash

        marker = f"one process {uuid.uuid4()}"
        event = await asyncio.wait_for(_live_error(url, key, marker), 30)
        assert event["message"] == marker

        async def stored() -> list[dict[str, Any]]:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                page = (await http.get("/api/v1/logs", headers={"X-API-Key": key},
                                       params={"search": marker})).json()
            found: list[dict[str, Any]] = page["logs"]
            return found

        logs: list[dict[str, Any]] = await wait_until(
            stored, "the error read back through the query daemon")
        assert [log["message"] for log in logs] == [marker]
        assert logs[0]["id"] == event["id"]

        # Each daemon's metrics port the banner names answers, in one process too.
        ports = dict(re.findall(r"(auth|ingest|query|analytics|alerts) :(\d+)", banner))
        assert set(ports) == {"auth", "ingest", "query", "analytics", "alerts"}, banner
        async with httpx.AsyncClient(timeout=10) as http:
            for name, metrics_port in ports.items():
                text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
                assert "ledger_" in text, name
            ingest = (await http.get(f"http://127.0.0.1:{ports['ingest']}/metrics")).text
        accepted = r'^ledger_ingest_logs_total\{[^}]*outcome="accepted"[^}]*\} [1-9]'
        assert re.search(accepted, ingest, re.M), ingest
    finally:
        code = await asyncio.to_thread(up.interrupt)
    assert code == 0, up.output
    assert "stopped" in up.output
    assert "Traceback" not in up.output
    # No gRPC C-core INFO/WARNING lines (e.g. fork_posix.cc's when pg_ctl is forked at stop).
    assert not re.search(r"^[IW]\d{4} \d\d:\d\d", up.output, re.M), up.output
    log = tmp_path / ".ledger" / "logs" / "ledger.log"
    assert "gateway listening" in log.read_text()  # the daemons' logs went to the file
