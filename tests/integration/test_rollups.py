"""Hourly rollups equal a direct recount of the raw rows: hour edges, percentiles, late logs."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ledger.config import Settings
from ledger.daemons.analytics import AnalyticsDaemon, create
from tests.ingest_support import error_log, log, running_ingest, send, stored
from tests.logrows import insert_logs
from tests.logrows import log as row
from tests.rollup_support import assert_same, hour_of, recount, stored_rollups

BASE = datetime(2026, 11, 20, 10, tzinfo=UTC)
PATHS = ["/api/users/42", "/api/users/7?verbose=1", f"/api/orders/{uuid.uuid4()}/items",
         "/health", "/api/users/42/posts/9"]


@pytest.fixture
async def analytics(settings: Settings) -> AsyncIterator[AnalyticsDaemon]:
    daemon = create(settings)
    await daemon.start()
    yield daemon
    await daemon.stop()


def _generated(projects: list[str], rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    # The first and last microsecond of each hour, and the first of the next one.
    edges = [BASE, BASE + timedelta(hours=1) - timedelta(microseconds=1),
             BASE + timedelta(hours=1), BASE + timedelta(hours=2, minutes=59, seconds=59)]
    for i in range(600):
        project = projects[i % len(projects)]
        ts = edges[i % 4] if i < 40 else BASE + timedelta(seconds=rng.uniform(0, 3 * 3600))
        kind = rng.choice(["endpoint", "endpoint", "exception", "logger", "network"])
        if kind == "endpoint":
            endpoint: dict[str, Any] = {
                "method": rng.choice(["get", "GET", "POST"]), "path": rng.choice(PATHS),
                "status_code": rng.choice([200, 200, 404, 500, 503]),
                "duration_ms": round(rng.lognormvariate(3, 1), 3)}
            if i % 17 == 0:
                endpoint["route"] = "/api/users/{user_id}"
            rows.append(row(project, ts, log_type="endpoint", level="info",
                            attributes={"endpoint": endpoint}))
        elif kind == "exception":
            error_type = rng.choice(["KeyError", "ValueError", "TimeoutError"])
            rows.append(row(project, ts, log_type="exception", level=rng.choice(["error",
                            "critical"]), error_type=error_type, error_message="boom",
                            error_fingerprint=f"fp-{error_type}", fingerprint_version=1))
        else:
            rows.append(row(project, ts, log_type=kind,
                            level=rng.choice(["debug", "info", "warning", "error"])))
    return rows


async def test_hour_rollups_equal_a_recount(settings: Settings,
                                            analytics: AnalyticsDaemon) -> None:
    url = str(settings.logs_database_url)
    projects = [str(uuid.uuid4()), str(uuid.uuid4())]
    insert_logs(url, _generated(projects, random.Random(12)))
    for hour in range(3):
        run = await analytics.run_job("rollup", hour=BASE + timedelta(hours=hour, minutes=30))
        assert run.outcome == "ok"
    expected = recount(url)
    assert {k[2] for k in expected} == {BASE + timedelta(hours=h) for h in range(3)}
    assert any(k[1] == "endpoint" and k[3] == "GET /api/users/{id}" for k in expected)
    assert any(k[1] == "endpoint" and k[3] == "GET /api/users/{user_id}" for k in expected)
    assert_same(stored_rollups(url), expected)

    # Running again changes nothing (recompute, never add).
    await analytics.run_job("rollup", hour=BASE)
    assert_same(stored_rollups(url), expected)

    # The bottleneck table holds the same figures per route and method.
    with psycopg.connect(url, row_factory=dict_row) as conn:
        bottlenecks = conn.execute("SELECT * FROM bottleneck_metrics").fetchall()
    assert bottlenecks
    for b in bottlenecks:
        figures = expected[(str(b["project_id"]), "endpoint", b["bucket_start"],
                            f"{b['method']} {b['route']}")]
        assert b["count"] == figures["count"]
        assert b["median_ms"] == pytest.approx(figures["p50_ms"])
        assert b["p99_ms"] == pytest.approx(figures["p99_ms"])


async def test_late_logs_through_the_writers_recompute_their_hours(
        settings: Settings, analytics: AnalyticsDaemon) -> None:
    url = str(settings.logs_database_url)
    project = str(uuid.uuid4())
    now = datetime.now(UTC)
    two_days_ago = now - timedelta(days=2)
    async with running_ingest(settings) as (_, client):
        await send(client, project, {"logs": [log(i) for i in range(5)]})
        await stored(url, project, 5)
        first = await analytics.run_job("rollup")
        assert first.summary == {"recomputed": 1}
        assert_same(stored_rollups(url), recount(url))

        late = [error_log(i, timestamp=(two_days_ago + timedelta(seconds=i)).isoformat())
                for i in range(3)]
        await send(client, project, {"logs": late})
        await stored(url, project, 8)
        await analytics.run_job("rollup")
        rollups = stored_rollups(url)
        assert_same(rollups, recount(url))
        late_hour = hour_of(two_days_ago + timedelta(seconds=1))
        assert rollups[(project, "log_volume", late_hour, "error:exception")]["count"] >= 1

        # Another log for that old hour, after it was rolled up: the hour is recomputed.
        await send(client, project, {"logs": [error_log(9, timestamp=(
            late_hour + timedelta(minutes=1)).isoformat())]})
        await stored(url, project, 9)
        await analytics.run_job("rollup")
        assert_same(stored_rollups(url), recount(url))
        # Nothing left to do: every touched hour was taken.
        assert (await analytics.run_job("rollup")).summary == {"recomputed": 0}


async def test_touched_hours_taken_by_a_run_that_died_are_recomputed_next_time(
        settings: Settings, analytics: AnalyticsDaemon) -> None:
    from ledger.core import rollups

    url = str(settings.logs_database_url)
    project = str(uuid.uuid4())
    insert_logs(url, [row(project, BASE + timedelta(minutes=m)) for m in range(4)])
    await rollups.mark_touched(analytics.redis, project, [int(BASE.timestamp()) // 3600])
    taken = await rollups.pop_touched(analytics.redis)  # a run takes them, then dies
    assert taken == {BASE: [project]}
    assert stored_rollups(url) == {}
    run = await analytics.run_job("rollup")
    assert run.summary == {"recomputed": 1}
    assert_same(stored_rollups(url), recount(url))
    assert (await analytics.run_job("rollup")).summary == {"recomputed": 0}
