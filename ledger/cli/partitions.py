"""`ledger partitions list|create|prune`: the monthly partitions of the logs table."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from ledger.cli import flags
from ledger.cli.context import load_settings, reaching_the_stack
from ledger.cli.output import console, fail, handle_errors, print_json, success, table
from ledger.config import Settings

if TYPE_CHECKING:
    import psycopg

    from ledger.core import retention
    from ledger.db.partitions import PartitionInfo

app = typer.Typer(help="Monthly partitions of the logs table.", no_args_is_help=True)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _logs_url(settings: Settings) -> str:
    settings.require("logs_database_url")
    return str(settings.logs_database_url)


def _range(name: str) -> tuple[str, str]:
    from ledger.db import partitions

    bounds = partitions.month_range(name)
    if bounds is None:
        return "", ""
    return bounds[0].date().isoformat(), bounds[1].date().isoformat()


def _info_json(info: PartitionInfo) -> dict[str, object]:
    start, end = _range(info.name)
    return {"name": info.name, "from": start, "to": end, "rows": info.rows, "bytes": info.bytes}


def _info_row(info: PartitionInfo) -> list[str]:
    start, end = _range(info.name)
    return [info.name, f"{start} → {end}" if start else "", f"{info.rows:,}", _human(info.bytes)]


@app.command("list")
def list_command(json_output: bool = flags.option("--json", False, help="Print JSON.")) -> None:
    """List partitions with their time range, estimated rows and size on disk."""
    from ledger.db import partitions
    from ledger.db.pool import connect

    with handle_errors(), reaching_the_stack(), connect(_logs_url(load_settings())) as conn:
        infos = partitions.describe_sync(conn)
        if json_output:
            print_json([_info_json(i) for i in infos])
            return
        table("Partitions of logs", ["partition", "range (UTC)", "rows (est.)", "size"],
              [_info_row(i) for i in infos])


@app.command("create")
def create_command(
    ahead: int = flags.option("--months-ahead", 2, min=0, max=36, help="Months ahead of this one."),
    json_output: bool = flags.option("--json", False, help="Print JSON."),
) -> None:
    """Create the partitions of this month and the next N months (idempotent)."""
    from ledger.db import partitions
    from ledger.db.pool import connect

    with handle_errors(), reaching_the_stack(), connect(_logs_url(load_settings())) as conn:
        created = partitions.ensure_months_sync(
            conn, partitions.months_ahead(datetime.now(UTC), ahead))
        if json_output:
            print_json({"created": created})
        elif created:
            success(f"created {', '.join(created)}")
        else:
            success("every partition already exists")


@app.command("prune")
def prune_command(
    older_than: str | None = flags.option(
        "--older-than", None,
        help="Drop partitions wholly older than this (90d, 12w, 6m, 1y) [default: the longest"
             " retention of any project, at least LEDGER_AUTH_RETENTION_DAYS]."),
    dry_run: bool = flags.option(
        "--dry-run", False, help="Show what would be dropped and trimmed; change nothing."),
    yes: bool = flags.option("--yes", False, help="Do not ask for confirmation."),
    json_output: bool = flags.option("--json", False, help="Print JSON."),
) -> None:
    """Drop whole partitions past the retention (instant, no DELETE), then trim projects with
    a shorter retention inside the partitions that remain, in small batches.

    On a terminal it asks before changing anything unless --yes is given.
    """
    import asyncio

    from ledger.core import retention

    with handle_errors(), reaching_the_stack():
        settings = load_settings()
        url = _logs_url(settings)
        days = retention.parse_age(older_than) if older_than else None
        retentions = _retentions(settings)

        async def plan_and_preview() -> tuple[retention.Plan, retention.Outcome]:
            async with await _connect(url) as conn:
                from ledger.db import partitions

                todo = retention.plan(await partitions.existing_names(conn), retentions,
                                      settings.auth_retention_days, datetime.now(UTC),
                                      older_than_days=days)
                return todo, await retention.preview(conn, todo)

        todo, preview = asyncio.run(plan_and_preview())
        if not dry_run and (preview.dropped or preview.trimmed) and not yes \
                and sys.stdin.isatty() and not json_output:
            _show(todo, preview, dry_run=True)
            if not typer.confirm("Drop and trim these rows?", default=False):
                raise fail("nothing was changed", 1)

        async def run() -> retention.Outcome:
            async with await _connect(url) as conn:
                return await retention.apply(conn, todo)

        outcome = preview if dry_run else asyncio.run(run())
        if json_output:
            print_json({"retention_days": todo.retention_days, "dry_run": dry_run,
                        "partitions": [_info_json(i) for i in outcome.dropped],
                        "trimmed": [{"project_id": p, "rows": n}
                                    for p, n in sorted(outcome.trimmed.items())]})
            return
        _show(todo, outcome, dry_run=dry_run)


def _show(todo: retention.Plan, outcome: retention.Outcome, *, dry_run: bool) -> None:
    if not outcome.dropped and not outcome.trimmed:
        success(f"nothing older than {todo.retention_days} days, and no project to trim")
        return
    verb = "would drop" if dry_run else "dropped"
    if outcome.dropped:
        table(f"Partitions {verb} (older than {todo.retention_days} days)",
              ["partition", "range (UTC)", "rows", "size"],
              [_info_row(i) for i in outcome.dropped])
    if outcome.trimmed:
        days = {t.project_id: t.retention_days for t in todo.trims}
        table(f"Rows {'that would be' if dry_run else ''} trimmed (shorter retention)",
              ["project", "retention", "rows"],
              [[p, f"{days.get(p, '?')} days", f"{n:,}"]
               for p, n in sorted(outcome.trimmed.items())])
    if dry_run:
        console.print("[dim]nothing was changed: run without --dry-run to do it[/dim]")


async def _connect(url: str) -> psycopg.AsyncConnection[Any]:
    import psycopg

    return await psycopg.AsyncConnection.connect(url, autocommit=True)


def _retentions(settings: Settings) -> dict[str, int]:
    """Every project's retention, read from the auth database (none without one: then only
    LEDGER_AUTH_RETENTION_DAYS bounds the drop)."""
    if not settings.auth_database_url:
        return {}
    import asyncio

    from ledger.core.projects import list_projects

    async def read() -> dict[str, int]:
        async with await _connect(str(settings.auth_database_url)) as conn:
            return {p.id: p.retention_days for p in await list_projects(conn)}

    return asyncio.run(read())
