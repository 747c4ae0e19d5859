"""`ledger partitions list|create|prune`: the monthly partitions of the logs table."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from ledger.cli.context import load_settings
from ledger.cli.output import console, handle_errors, print_json, success, table
from ledger.config import Settings

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


@app.command("list")
def list_command(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List partitions with their estimated rows and size on disk."""
    from ledger.db import partitions
    from ledger.db.pool import connect

    with handle_errors(), connect(_logs_url(load_settings())) as conn:
        infos = partitions.describe_sync(conn)
        if json_output:
            print_json([{"name": i.name, "rows": i.rows, "bytes": i.bytes} for i in infos])
            return
        table("Partitions of logs", ["partition", "rows (est.)", "size"],
              [[i.name, f"{i.rows:,}", _human(i.bytes)] for i in infos])


@app.command("create")
def create_command(
    ahead: int = typer.Option(2, "--ahead", min=0, max=36, help="Months ahead of this one."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create the partitions of this month and the next AHEAD months (idempotent)."""
    from ledger.db import partitions
    from ledger.db.pool import connect

    with handle_errors(), connect(_logs_url(load_settings())) as conn:
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
    days: int | None = typer.Option(
        None, "--days", min=1,
        help="Retention in days [default: the longest retention of any project, at least"
             " LEDGER_AUTH_RETENTION_DAYS]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be dropped."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Drop whole partitions older than the retention: instant, no DELETE."""
    from ledger.db import partitions
    from ledger.db.pool import connect

    with handle_errors():
        settings = load_settings()
        retention = days or _longest_retention(settings)
        with connect(_logs_url(settings)) as conn:
            infos = {i.name: i for i in partitions.describe_sync(conn)}
            doomed = partitions.expired(infos, datetime.now(UTC), retention)
            if not dry_run:
                partitions.drop_sync(conn, doomed)
        gone = [infos[n] for n in doomed]
        if json_output:
            print_json({"retention_days": retention, "dry_run": dry_run, "partitions": [
                {"name": i.name, "rows": i.rows, "bytes": i.bytes} for i in gone]})
            return
        if not gone:
            success(f"nothing older than {retention} days")
            return
        verb = "would drop" if dry_run else "dropped"
        table(f"Partitions {verb} (retention {retention} days)", ["partition", "rows", "size"],
              [[i.name, f"{i.rows:,}", _human(i.bytes)] for i in gone])
        if dry_run:
            console.print("[dim]nothing was dropped: run without --dry-run to drop them[/dim]")


def _longest_retention(settings: Settings) -> int:
    """Never drop what a project with a longer retention still keeps."""
    from ledger.db.pool import connect

    if not settings.auth_database_url:
        return settings.auth_retention_days
    with connect(str(settings.auth_database_url)) as conn:
        row = conn.execute("SELECT max(retention_days) FROM projects").fetchone()
    longest = int(row[0]) if row and row[0] is not None else 0  # type: ignore[index]
    return max(longest, settings.auth_retention_days)
