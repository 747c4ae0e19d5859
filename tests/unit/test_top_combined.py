"""`ledger top --all-projects` folds each project's snapshot into one."""

from __future__ import annotations

from ledger.cli.top_all import combined


def _rate(*counts: tuple[str, int, int]) -> list[dict[str, object]]:
    return [{"timestamp": t, "error_count": e, "critical_count": c} for t, e, c in counts]


def test_series_add_up_by_time_and_rankings_name_the_project() -> None:
    shop = {"error_rate": _rate(("10:00", 1, 0), ("10:05", 2, 1)),
            "log_volume": [{"timestamp": "10:00", "info": 5, "error": 1}],
            "top_errors": [{"id": "a", "title": "KeyError: sku", "count_24h": 3}],
            "slow_routes": [{"method": "GET", "route": "/cart", "p95_ms": 80.0, "count": 2}],
            "usage": {"day": "2026-12-02", "accepted": 7, "daily_quota": 100}}
    # Its cache was computed five minutes later: one bucket newer, one older gone.
    blog = {"error_rate": _rate(("10:05", 4, 0), ("10:10", 1, 0)),
            "log_volume": [{"timestamp": "10:00", "info": 2, "error": 0}],
            "top_errors": [{"id": "b", "title": "IOError: disk", "count_24h": 9}],
            "slow_routes": [{"method": "GET", "route": "/post", "p95_ms": 120.0, "count": 1}],
            "usage": {"day": "2026-12-02", "accepted": 3, "daily_quota": 50}}
    shot = combined({"shop": shop, "blog": blog})
    assert shot["error_rate"] == _rate(("10:05", 6, 1), ("10:10", 1, 0))  # as long as each
    assert shot["log_volume"] == [{"timestamp": "10:00", "info": 7, "error": 1}]
    assert [(g["title"], g["project"]) for g in shot["top_errors"]] == [
        ("blog: IOError: disk", "blog"), ("shop: KeyError: sku", "shop")]
    assert [r["route"] for r in shot["slow_routes"]] == ["blog /post", "shop /cart"]
    assert shot["usage"] == {"day": "2026-12-02", "accepted": 10, "daily_quota": 150,
                             "remaining": 140, "percent": 6.67}
    assert shot["projects"] == ["blog", "shop"]


def test_one_project_without_a_quota_makes_the_total_unlimited() -> None:
    shot = combined({"a": {"usage": {"accepted": 1, "daily_quota": 10}},
                     "b": {"usage": {"accepted": 2, "daily_quota": 0}}})
    assert shot["usage"]["accepted"] == 3 and shot["usage"]["daily_quota"] == 0
    assert shot["usage"]["percent"] is None
    assert combined({})["error_rate"] == [] and combined({})["projects"] == []
