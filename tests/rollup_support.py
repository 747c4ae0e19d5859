"""An independent recount of the hourly rollups, in Python, over rows read back from ``logs``."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NUMBER = re.compile(r"/[0-9]+(?=/|$)")


def percentile(values: list[float], p: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    at = p * (len(ordered) - 1)
    lo = math.floor(at)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (at - lo)


def route_of(attributes: dict[str, Any]) -> str:
    endpoint = attributes.get("endpoint") or {}
    if endpoint.get("route"):
        return str(endpoint["route"])
    path = str(endpoint.get("path") or "").split("?", 1)[0]
    return _NUMBER.sub("/{id}", _UUID.sub("{uuid}", path))


def hour_of(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def recount(url: str) -> dict[tuple[str, str, datetime, str], dict[str, Any]]:
    """What ``aggregated_metrics`` must hold for every row now in ``logs``."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM logs").fetchall()
    out: dict[tuple[str, str, datetime, str], dict[str, Any]] = {}
    durations: dict[tuple[str, str, datetime, str], list[float]] = defaultdict(list)

    def bump(key: tuple[str, str, datetime, str], errors: int) -> dict[str, Any]:
        entry = out.setdefault(key, {"count": 0, "error_count": 0})
        entry["count"] += 1
        entry["error_count"] += errors
        return entry

    for row in rows:
        project, hour = str(row["project_id"]), hour_of(row["timestamp"])
        is_error = int(row["level"] in ("error", "critical"))
        bump((project, "log_volume", hour, f"{row['level']}:{row['log_type']}"), is_error)
        if row["log_type"] == "exception":
            bump((project, "exception", hour, row["error_type"] or "(none)"), is_error)
        if row["error_fingerprint"]:
            bump((project, "error_group", hour, row["error_fingerprint"]), is_error)
        if row["log_type"] == "endpoint":
            endpoint = (row["attributes"] or {}).get("endpoint") or {}
            key = (project, "endpoint", hour,
                   f"{str(endpoint.get('method') or '').upper()} {route_of(row['attributes'])}")
            entry = out.setdefault(key, {"count": 0, "error_count": 0})
            entry["count"] += 1
            entry["error_count"] += int(endpoint.get("status_code", 0) >= 500)
            durations[key].append(float(endpoint["duration_ms"]))
    for key, values in durations.items():
        out[key].update(min_ms=min(values), max_ms=max(values),
                        avg_ms=sum(values) / len(values), p50_ms=percentile(values, 0.5),
                        p95_ms=percentile(values, 0.95), p99_ms=percentile(values, 0.99))
    return out


def stored_rollups(url: str) -> dict[tuple[str, str, datetime, str], dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM aggregated_metrics").fetchall()
    out = {}
    for row in rows:
        figures: dict[str, Any] = {"count": row["count"], "error_count": row["error_count"]}
        if row["metric_type"] == "endpoint":
            figures.update({k: row[k] for k in ("min_ms", "max_ms", "avg_ms", "p50_ms",
                                                 "p95_ms", "p99_ms")})
        out[(str(row["project_id"]), row["metric_type"], row["bucket_start"],
             row["dimension"])] = figures
    return out


def assert_same(stored: dict[Any, dict[str, Any]], expected: dict[Any, dict[str, Any]]) -> None:
    assert set(stored) == set(expected), (set(stored) ^ set(expected))
    for key, figures in expected.items():
        for name, value in figures.items():
            got = stored[key][name]
            if isinstance(value, float):
                assert got is not None and math.isclose(got, value, rel_tol=1e-9), (key, name)
            else:
                assert got == value, (key, name, got, value)
