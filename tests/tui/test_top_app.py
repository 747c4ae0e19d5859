"""`ledger top` through Textual's pilot against a real stack (`ledger serve` processes), and its
``--json`` snapshot through the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from textual.widgets import DataTable, Sparkline, Static
from typer.testing import CliRunner

from ledger.cli.main import app
from ledger.cli.top import snapshot
from ledger.cli.top_all import snapshot_all
from ledger.config import Settings
from ledger.daemons.analytics import create
from ledger.tui.top_app import TopApp, trend_text
from tests.live_support import error_body, provision
from tests.stack import Stack
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


@dataclass
class Running:
    stack: Stack
    key: str


def _endpoint(path: str, ms: float) -> dict[str, object]:
    return {"timestamp": datetime.now(UTC).isoformat(), "level": "info", "log_type": "endpoint",
            "message": f"GET {path}", "attributes": {"endpoint": {
                "method": "GET", "path": path, "status_code": 200, "duration_ms": ms}}}


def _stored(url: str, n: int) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM logs").fetchone()
    return bool(row and row[0] >= n)


@pytest.fixture
async def running(settings: Settings, tmp_path: Path) -> AsyncIterator[Running]:
    _, key = await provision(str(settings.auth_database_url), "shop")
    with Stack(settings, tmp_path / "stack") as stack:
        stack.start("auth", "ingest", "query", "gateway")
        logs = [error_body("card declined") for _ in range(3)]
        logs += [error_body("stock missing", error_type="KeyError")]
        logs += [_endpoint("/cart/7", 120.0), _endpoint("/cart/8", 80.0),
                 _endpoint("/health", 2.0)]
        answer = httpx.post(f"{stack.url}/api/v1/ingest/batch", json={"logs": logs},
                            headers={"X-API-Key": key}, timeout=10)
        assert answer.status_code == 202, answer.text
        await wait_until(lambda: asyncio.to_thread(_stored, str(settings.logs_database_url),
                                                   len(logs)), "the batch is stored")
        assert await _rollup(stack.settings) == 1
        yield Running(stack, key)


async def _first_refresh(top: TopApp, pilot: Any) -> None:
    """Until the dashboard has drawn its first snapshot (and no fetch has failed)."""
    while top.refreshes == 0:
        assert top.problem is None, top.problem
        await pilot.pause(0.05)


async def _rollup(settings: Settings) -> int:
    """One rollup run, as the analytics daemon does it; how many hours it recomputed."""
    analytics = create(settings)
    await analytics.start()
    try:
        return int((await analytics.run_job("rollup")).summary["recomputed"])
    finally:
        await analytics.stop()


def _cells(table: DataTable[object], column: int) -> list[str]:
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


async def test_top_shows_the_dashboard_at_80x24_and_filters(running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.stack.url, timeout=10,
                                 headers={"X-API-Key": running.key}) as http:
        top = TopApp(lambda: snapshot(http), scope="shop", refresh_seconds=60)
        async with top.run_test(size=(80, 24)) as pilot:
            await _first_refresh(top, pilot)
            errors = top.query_one("#errors", DataTable)
            titles = _cells(errors, 2)
            assert titles == ["ValueError: card declined", "KeyError: stock missing"]
            assert _cells(errors, 0) == ["3", "1"]
            routes = top.query_one("#routes", DataTable)
            assert _cells(routes, 1) == ["/cart/{id}", "/health"]
            assert sum(top.query_one("#sparkline", Sparkline).data or []) == 4
            volume = str(top.query_one("#volume", Static).render())
            assert "error 4" in volume and "info 3" in volume
            status = str(top.query_one("#status", Static).render())
            assert "shop" in status and "today 7" in status

            await pilot.press("slash", *"stock")
            assert _cells(errors, 2) == ["KeyError: stock missing"]
            assert routes.row_count == 0
            await pilot.press("escape")
            assert errors.row_count == 2
            await pilot.press("r")
            while top.refreshes < 2:
                await pilot.pause(0.05)
            await pilot.press("q")
        assert top.return_code == 0


async def test_top_keeps_the_last_figures_and_says_when_the_gateway_refuses(
        running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.stack.url, timeout=10,
                                 headers={"X-API-Key": "ledger_nokey_nosecret"}) as http:
        top = TopApp(lambda: snapshot(http), scope="shop", refresh_seconds=60)
        async with top.run_test(size=(80, 24)) as pilot:
            while top.problem is None:
                await pilot.pause(0.05)
            assert "⚠" in str(top.query_one("#status", Static).render())
            await pilot.press("q")


async def test_top_all_projects_combines_every_project_of_the_account(
        running: Running, settings: Settings) -> None:
    url = running.stack.url
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        tokens = (await http.post("/api/v1/accounts/login", json={
            "email": "shop@example.com", "password": "correct horse battery"})).json()
        http.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        assert (await http.post("/api/v1/projects", json={"name": "Blog", "slug": "blog"})
                ).status_code == 201
        key = (await http.post("/api/v1/projects/blog/api-keys",
                               json={"scopes": ["ingest", "read"]})).json()["full_key"]
        logs = [error_body("feed timeout", error_type="TimeoutError") for _ in range(2)]
        answer = await http.post("/api/v1/ingest/batch", json={"logs": logs},
                                 headers={"X-API-Key": key})
        assert answer.status_code == 202, answer.text
        await wait_until(lambda: asyncio.to_thread(_stored, str(settings.logs_database_url), 9),
                         "the second project's batch is stored")
        assert await _rollup(running.stack.settings) >= 1

        top = TopApp(lambda: snapshot_all(http), scope="all projects", refresh_seconds=60)
        async with top.run_test(size=(80, 24)) as pilot:
            await _first_refresh(top, pilot)
            errors = top.query_one("#errors", DataTable)
            assert _cells(errors, 2) == ["shop: ValueError: card declined",
                                         "blog: TimeoutError: feed timeout",
                                         "shop: KeyError: stock missing"]
            assert _cells(errors, 0) == ["3", "2", "1"]
            assert sum(top.query_one("#sparkline", Sparkline).data or []) == 6
            status = str(top.query_one("#status", Static).render())
            assert "all projects (2)" in status and "today 9" in status
            await pilot.press("q")

    # A key reads its own project only: the flag says what to do instead.
    result = CliRunner().invoke(app, ["top", "--all-projects", "--json", "--url", url,
                                      "--api-key", running.key])
    assert result.exit_code != 0 and "run `ledger login`" in result.output


def test_top_json_snapshot(running: Running) -> None:
    result = CliRunner().invoke(app, ["top", "--json", "--url", running.stack.url,
                                      "--api-key", running.key])
    assert result.exit_code == 0, result.output
    shot = orjson.loads(result.output)
    assert set(shot) == {"error_rate", "log_volume", "top_errors", "usage", "slow_routes"}
    assert [g["count_24h"] for g in shot["top_errors"]] == [3, 1]
    assert shot["usage"]["accepted"] == 7


def test_trend_text_scales_to_the_peak() -> None:
    assert trend_text([0, 1, 2, 4], width=4) == " ▂▄▇"
    assert trend_text([0, 0], width=2) == "  "
