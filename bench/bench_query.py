"""Read latency on a big logs table, in SQL and through the REST API (DESIGN §9).

    .venv/bin/python bench/gen_logs.py                 # once: 10 M logs, 90 days, 20 projects
    .venv/bin/python bench/bench_query.py              # p50/p99 of each read

Starts Redis and real `ledger serve auth|query|gateway` processes over the PostgreSQL that
``gen_logs.py`` filled, then times, for one project (about 1/20 of the rows):

* ``latest``: the latest 100 logs of the last 24 h;
* ``errors``: level=error over the last 7 days;
* ``search``: text search ("timeout", about 1 log in 200) over the last 7 days;
* ``search_miss``: a text that matches nothing over the last 24 h (the whole window is read);
* ``deep_cursor``: a page of 100 at depth ``--depth`` of a cursor walk over the last 30 days.

Each read is timed twice: ``cold`` with the cached total deleted first (what the first page of
a new query costs: page and capped count in parallel) and ``warm`` (later pages of a walk, where
the total comes from the cache). ``sql`` is the page query alone on a direct connection.
Results go to stdout and ``bench/results/query.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CASES: dict[str, dict[str, str]] = {
    "latest": {"period": "last24h", "limit": "100"},
    "errors": {"level": "error", "period": "last7days", "limit": "100"},
    "search": {"search": "timeout", "period": "last7days", "limit": "100"},
    "search_miss": {"search": "no such text", "period": "last24h", "limit": "100"},
    "deep_cursor": {"period": "last30days", "limit": "100"},
}


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {"p50_ms": round(at(50), 2), "p99_ms": round(at(99), 2),
            "mean_ms": round(statistics.fmean(ordered), 2), "n": len(ordered)}


def timed(run: Callable[[], Any], iterations: int, before: Callable[[], Any] | None = None,
          ) -> list[float]:
    samples = []
    for _ in range(iterations):
        if before is not None:
            before()
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def deep_cursor(get: Callable[[dict[str, str]], dict[str, Any]], depth: int) -> str:
    """Walk ``depth`` rows of the deep_cursor query in pages of 1 000; return the cursor."""
    params = CASES["deep_cursor"] | {"limit": "1000"}
    walked = 0
    started = time.perf_counter()
    while walked < depth:
        page = get(params)
        walked += len(page["logs"])
        if not page["has_more"]:
            raise SystemExit(f"the walk ended at {walked} rows: use a smaller --depth")
        params = params | {"cursor": page["next_cursor"]}
    print(f"  walked {walked:,} rows in pages of 1 000: "
          f"{(time.perf_counter() - started) * 1000 / (walked / 1000):.1f} ms/page", flush=True)
    return params["cursor"]


def sql_timings(url: str, project_id: str, cases: dict[str, dict[str, str]],
                iterations: int) -> dict[str, dict[str, float]]:
    """The page query alone, on a direct connection (no gRPC, no HTTP, no count)."""
    import psycopg

    from ledger.core import log_search

    results: dict[str, dict[str, float]] = {}

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for name, params in cases.items():
                query = log_search.parse_log_query(params, project_id=project_id,
                                                   retention_days=120)
                samples = []
                for _ in range(iterations):
                    started = time.perf_counter()
                    await log_search.fetch_page(conn, query)
                    samples.append((time.perf_counter() - started) * 1000)
                results[name] = percentiles(samples)

    asyncio.run(main())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/ledger-bench"))
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--depth", type=int, default=100_000,
                        help="Rows deep in the walk for deep_cursor.")
    parser.add_argument("--project", type=int, default=0, help="Index of the project to read.")
    args = parser.parse_args()

    import httpx
    import redis

    from ledger import bus
    from ledger.config import Settings
    from ledger.embedded import EmbeddedPostgres, EmbeddedRedis
    from tests.stack import Stack

    state = json.loads((args.data_dir / "bench.json").read_text())
    project = state["projects"][args.project]
    postgres = EmbeddedPostgres(args.data_dir / "pg")
    postgres.start()
    redis_server = EmbeddedRedis(args.data_dir / "redis")
    try:
        settings = Settings(auth_database_url=postgres.url("ledger_auth"),
                            logs_database_url=postgres.url("ledger_logs"),
                            redis_url=redis_server.start(),
                            internal_token=secrets.token_urlsafe(16),
                            jwt_secret=secrets.token_urlsafe(32),
                            data_dir=args.data_dir / "data")
        cache = redis.Redis.from_url(str(settings.redis_url))
        total_keys = bus.query_total(project["id"], "*")

        def forget_totals() -> None:
            keys = list(cache.scan_iter(match=total_keys, count=1000))
            if keys:
                cache.delete(*keys)

        with Stack(settings, args.data_dir / "stack") as stack, httpx.Client(
                base_url=stack.url, headers={"X-API-Key": project["key"]}, timeout=30) as http:
            stack.start("auth", "query", "gateway")

            def get(params: dict[str, str]) -> dict[str, Any]:
                response = http.get("/api/v1/logs", params=params)
                response.raise_for_status()
                return dict(response.json())

            print(f"{state['rows']:,} logs over {state['days']} days, {len(state['projects'])}"
                  f" projects; reading {project['slug']}", flush=True)
            cases = dict(CASES)
            cases["deep_cursor"] = CASES["deep_cursor"] | {
                "cursor": deep_cursor(get, args.depth)}
            for params in cases.values():  # warm PostgreSQL's and the OS's caches
                for _ in range(5):
                    get(params)
            rest: dict[str, dict[str, Any]] = {}
            for name, params in cases.items():
                sample = get(params)
                cold = timed(lambda p=params: get(p), args.iterations, forget_totals)  # type: ignore[misc]
                warm = timed(lambda p=params: get(p), args.iterations)  # type: ignore[misc]
                rest[name] = {"cold": percentiles(cold), "warm": percentiles(warm),
                              "rows": len(sample["logs"]), "total": sample["total"],
                              "total_exact": sample["total_exact"]}
                print(f"  {name:<12} cold p50 {rest[name]['cold']['p50_ms']:6.2f} ms"
                      f"  p99 {rest[name]['cold']['p99_ms']:6.2f} ms   warm p50"
                      f" {rest[name]['warm']['p50_ms']:6.2f} ms  p99"
                      f" {rest[name]['warm']['p99_ms']:6.2f} ms   ({len(sample['logs'])} rows,"
                      f" total {sample['total']}{'' if sample['total_exact'] else '+'})",
                      flush=True)
        sql = sql_timings(str(settings.logs_database_url), project["id"], cases,
                          args.iterations)
        for name, numbers in sql.items():
            print(f"  {name:<12} sql  p50 {numbers['p50_ms']:6.2f} ms  p99"
                  f" {numbers['p99_ms']:6.2f} ms")
        out = REPO / "bench" / "results" / "query.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "measured_at": datetime.now(UTC).isoformat(), "rows": state["rows"],
            "days": state["days"], "projects": len(state["projects"]),
            "iterations": args.iterations, "depth": args.depth,
            "cases": {name: {"params": {k: v for k, v in CASES[name].items()},
                             "rest": rest[name], "sql": sql[name]} for name in CASES},
        }, indent=2) + "\n")
        print(f"results in {out.relative_to(REPO)}")
    finally:
        redis_server.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
