"""`ledger analytics run|history`: the analytics daemon's jobs, run once by an operator."""

from __future__ import annotations

from datetime import datetime

import typer

from ledger.cli import flags
from ledger.cli.context import load_settings, reaching_the_stack
from ledger.cli.output import fail, handle_errors, print_json, success, table

app = typer.Typer(help="Analytics jobs: rollups, metric caches, partitions, retention.",
                  no_args_is_help=True)

JOBS = ("partitions", "prune", "rollup", "caches")


def _hour(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    from ledger.core.log_search import parse_timestamp

    return parse_timestamp("--hour", raw if len(raw) > 13 else f"{raw}:00")


@app.command("run")
def run_command(
    job: str = typer.Argument(..., help=f"One of: {', '.join(JOBS)}."),
    hour: str | None = flags.option(
        "--hour", None,
        help="rollup only: recompute this hour (e.g. 2026-11-27T10) for every project, instead of"
             " the hours writers touched."),
    json_output: bool = flags.option("--json", False, help="Print JSON."),
) -> None:
    """Run one analytics job now, under the same lock the daemons take.

    Exits 75 without running when another copy holds the job's lock.
    """
    import asyncio
    from dataclasses import asdict

    from ledger.daemons.analytics import create

    with handle_errors(), reaching_the_stack():
        if job not in JOBS:
            raise fail(f"unknown job {job!r}: use one of {', '.join(JOBS)}", 64)
        when = _hour(hour)
        daemon = create(load_settings())

        async def main() -> dict[str, object]:
            await daemon.start()
            try:
                return asdict(await daemon.run_job(job, hour=when))
            finally:
                await daemon.stop()

        run = asyncio.run(main())
        if run["outcome"] == "busy":
            raise fail(f"another analytics copy is running {job} now; try again later", 75)
        if json_output:
            print_json(run)
        else:
            success(f"{job} done in {run['seconds']:.2f}s: {run['summary']}")


@app.command("history")
def history_command(
    job: str | None = flags.option("--job", None, help="Only this job."),
    json_output: bool = flags.option("--json", False, help="Print JSON."),
) -> None:
    """The newest job runs of every analytics copy (outcome, duration, error)."""
    import asyncio

    from ledger import bus
    from ledger.daemons.analytics.runner import history

    with handle_errors(), reaching_the_stack():
        settings = load_settings()
        settings.require("redis_url")

        async def main() -> list[dict[str, object]]:
            redis = bus.client(str(settings.redis_url))
            try:
                return await history(redis, job)
            finally:
                await redis.aclose()

        runs = asyncio.run(main())
        if json_output:
            print_json(runs)
            return
        table("Analytics job runs", ["started", "job", "outcome", "seconds", "owner", "detail"],
              [[datetime.fromtimestamp(float(str(r["started_at"]))).strftime("%Y-%m-%d %H:%M:%S"),
                r["job"], r["outcome"], f"{float(str(r['seconds'])):.2f}", r["owner"],
                r["error"] or r["summary"]] for r in runs])
