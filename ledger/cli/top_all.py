"""`ledger top --all-projects`: one dashboard over every project of the account.

The metric routes answer for one project each, from its cache; this fetches each project's
snapshot (concurrently) and folds them into one of the same shape, so the dashboard draws it
like any other: time series summed bucket by bucket, error groups and slow routes of all
projects in one ranking, each named after its project.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ledger.cli.top import snapshot

if TYPE_CHECKING:
    import httpx

Snapshot = dict[str, Any]
TOP_ERRORS = 50
SLOW_ROUTES = 10


def _summed(series: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Buckets with the same timestamp added up, oldest first, as many as the longest series.
    Projects' caches are computed at different moments, so their newest buckets need not be
    the same one: they are matched by time, not by position."""
    by_time: dict[str, dict[str, Any]] = {}
    for buckets in series:
        for bucket in buckets:
            stamp = str(bucket["timestamp"])
            into = by_time.setdefault(stamp, {"timestamp": bucket["timestamp"]})
            for name, value in bucket.items():
                if name != "timestamp" and isinstance(value, int | float):
                    into[name] = into.get(name, 0) + value
    width = max((len(buckets) for buckets in series), default=0)
    return [by_time[stamp] for stamp in sorted(by_time)][-width:] if width else []


def _usage(usages: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    usages = list(usages)
    accepted = sum(int(u.get("accepted") or 0) for u in usages)
    quotas = [int(u.get("daily_quota") or 0) for u in usages]
    # One project without a quota makes the total unlimited.
    quota = sum(quotas) if quotas and all(quotas) else 0
    return {"day": usages[0].get("day") if usages else None, "accepted": accepted,
            "daily_quota": quota, "remaining": max(quota - accepted, 0) if quota else None,
            "percent": round(100 * accepted / quota, 2) if quota else None}


def combined(snapshots: Mapping[str, Snapshot]) -> Snapshot:
    """One snapshot from each project's (keyed by the name to show, its slug)."""
    errors = [{**group, "title": f"{name}: {group.get('title') or ''}", "project": name}
              for name, shot in snapshots.items() for group in shot.get("top_errors", [])]
    errors.sort(key=lambda g: (-int(g.get("count_24h") or 0), str(g["title"])))
    routes = [{**route, "route": f"{name} {route.get('route', '')}", "project": name}
              for name, shot in snapshots.items() for route in shot.get("slow_routes", [])]
    routes.sort(key=lambda r: -float(r.get("p95_ms") or 0))
    return {
        "error_rate": _summed([s.get("error_rate", []) for s in snapshots.values()]),
        "log_volume": _summed([s.get("log_volume", []) for s in snapshots.values()]),
        "top_errors": errors[:TOP_ERRORS],
        "usage": _usage(s.get("usage") or {} for s in snapshots.values()),
        "slow_routes": routes[:SLOW_ROUTES],
        "projects": sorted(snapshots),
    }


async def account_projects(http: httpx.AsyncClient) -> dict[str, str]:
    """The account's projects, id → slug (needs an account session, not a key)."""
    from ledger.cli.api import error_from

    answer = await http.get("/api/v1/projects")
    if answer.status_code != 200:
        raise error_from(answer)
    return {str(p["id"]): str(p.get("slug") or p["id"]) for p in answer.json()["projects"]}


async def snapshot_all(http: httpx.AsyncClient) -> Snapshot:
    """Every project's snapshot, fetched together and combined."""
    projects = await account_projects(http)
    shots = await asyncio.gather(*(snapshot(http, project_id) for project_id in projects))
    return combined(dict(zip(projects.values(), shots, strict=True)))
