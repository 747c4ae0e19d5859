"""``/api/v1/metrics/*`` over REST: gateway in process, real auth and query daemons, rollups
written by the real analytics jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.config import Settings
from ledger.daemons.analytics import create
from ledger.queue import names
from tests.logrows import insert_group, insert_logs, log
from tests.restenv import Rest, detail, rest_stack


@pytest.fixture
async def rest(settings: Settings) -> AsyncIterator[Rest]:
    async with rest_stack(settings) as env:
        yield env


async def _roll_up(settings: Settings, hours: list[datetime]) -> None:
    daemon = create(settings)
    await daemon.start()
    try:
        for hour in hours:
            await daemon.run_job("rollup", hour=hour)
    finally:
        await daemon.stop()


def _endpoint(project: str, ts: datetime, path: str, ms: float, status: int = 200,
              ) -> dict[str, Any]:
    return log(project, ts, log_type="endpoint", attributes={"endpoint": {
        "method": "GET", "path": path, "status_code": status, "duration_ms": ms}})


async def get(rest: Rest, path: str, key: str, **params: str) -> Any:
    response = await rest.http.get(path, params=params, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    return response


async def test_metric_routes_from_rollups_and_caches(rest: Rest) -> None:
    owner = await rest.account()
    p = owner.project_id
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    url = rest.settings.logs_database_url or ""
    insert_logs(url, [
        _endpoint(p, hour, "/users/1", 10), _endpoint(p, hour, "/users/2", 30, 500),
        _endpoint(p, hour, "/health", 1),
        log(p, hour, level="error", log_type="exception", error_type="KeyError",
            error_fingerprint="fp-a"),
        log(p, hour, level="critical"),
        log(p, hour - timedelta(hours=3), level="warning"),
    ])
    insert_group(url, p, "fp-a", last_seen=hour)
    await _roll_up(rest.settings, [hour, hour - timedelta(hours=3)])

    agg = (await get(rest, "/api/v1/metrics/aggregated", owner.key, type="endpoint",
                     period="last24h")).json()
    assert agg["granularity"] == "hourly"
    assert len(agg["buckets"]) >= 24  # zero-filled
    filled = [b for b in agg["buckets"] if b["count"]]
    assert [b["timestamp"] for b in filled] == [hour.isoformat().replace("+00:00", "Z")]
    users = filled[0]["by_dimension"]["GET /users/{id}"]
    assert (users["count"], users["error_count"]) == (2, 1)
    assert users["p50_ms"] == pytest.approx(20.0)
    assert sum(b["count"] for b in agg["buckets"]) == 3

    daily = (await get(rest, "/api/v1/metrics/aggregated", owner.key, type="log_volume",
                       granularity="daily", period="last7days")).json()
    assert sum(b["count"] for b in daily["buckets"]) == 6

    slow = (await get(rest, "/api/v1/metrics/bottleneck", owner.key, statistic="max")).json()
    assert [r["route"] for r in slow["routes"]] == ["/users/{id}", "/health"]
    assert slow["routes"][0]["value"] == 30
    assert slow["routes_seen"] == ["/health", "/users/{id}"]
    only = (await get(rest, "/api/v1/metrics/bottleneck", owner.key, routes="/health",
                      statistic="count")).json()
    assert [(r["route"], r["value"]) for r in only["routes"]] == [("/health", 1)]

    first = await get(rest, "/api/v1/metrics/error-rate", owner.key)
    assert first.headers["X-Ledger-Cache"] == "miss"
    buckets = first.json()["data"]
    assert len(buckets) == 288
    assert sum(b["error_count"] for b in buckets) == 1
    assert sum(b["critical_count"] for b in buckets) == 1
    again = await get(rest, "/api/v1/metrics/error-rate", owner.key)
    assert again.headers["X-Ledger-Cache"] == "hit" and again.json() == first.json()

    volume = (await get(rest, "/api/v1/metrics/log-volume", owner.key)).json()["data"]
    assert len(volume) == 168
    assert sum(b["warning"] for b in volume) == 1 and sum(b["info"] for b in volume) == 3

    top = (await get(rest, "/api/v1/metrics/top-errors", owner.key)).json()["data"]
    assert [(t["fingerprint"], t["count_24h"]) for t in top] == [("fp-a", 1)]
    assert sum(top[0]["trend"]) == 1 and len(top[0]["trend"]) == 24

    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(rest.settings.redis_url or "")
    await client.set(names.daily_quota(p, now.strftime("%Y%m%d")), 25)
    await client.aclose()
    usage = (await get(rest, "/api/v1/metrics/usage", owner.key)).json()
    assert usage["accepted"] == 25 and usage["daily_quota"] == owner.project["daily_quota"]

    # An account reads its own project's metrics with its token.
    response = await rest.http.get("/api/v1/metrics/error-rate", headers=owner.bearer,
                                   params={"project_id": owner.project["slug"]})
    assert response.status_code == 200, response.text


async def test_bad_parameters_and_foreign_projects_are_4xx(rest: Rest) -> None:
    owner, other = await rest.account(), await rest.account()
    cases = [
        ({}, "type is required"),
        ({"type": "cpu"}, "type must be"),
        ({"type": "endpoint", "granularity": "weekly"}, "granularity"),
        ({"type": "endpoint", "periodFrom": "yesterday"}, "periodFrom"),
        ({"type": "endpoint", "period": "last24h", "periodFrom": "2026-01-01"}, "period"),
        ({"type": "endpoint", "periodFrom": "2000-01-01T00:00:00Z",
          "periodTo": "2026-01-01T00:00:00Z"}, "periodFrom/periodTo"),
        ({"type": "endpoint", "colour": "red"}, "colour"),
    ]
    for params, named in cases:
        response = await rest.http.get("/api/v1/metrics/aggregated", params=params,
                                       headers={"X-API-Key": owner.key})
        assert named in detail(response, 400), params
    response = await rest.http.get("/api/v1/metrics/bottleneck", params={"statistic": "mode"},
                                   headers={"X-API-Key": owner.key})
    assert "statistic" in detail(response, 400)
    response = await rest.http.get("/api/v1/metrics/error-rate", params={"bucket": "1m"},
                                   headers={"X-API-Key": owner.key})
    assert "bucket" in detail(response, 400)
    response = await rest.http.get("/api/v1/metrics/error-rate",
                                   params={"project_id": other.project_id},
                                   headers={"X-API-Key": owner.key})
    detail(response, 404)
    ingest_only = await rest.key(owner, ["ingest"])
    response = await rest.http.get("/api/v1/metrics/usage", headers={"X-API-Key": ingest_only})
    assert response.status_code == 403
    response = await rest.http.get("/api/v1/metrics/usage")
    assert response.status_code == 401
