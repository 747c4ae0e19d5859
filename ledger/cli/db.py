"""`ledger db migrate|status`: the schema of the auth and logs databases."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from ledger.cli import flags
from ledger.cli.context import load_settings, reaching_the_stack
from ledger.cli.output import handle_errors, print_json, success, table
from ledger.config import Settings

app = typer.Typer(help="Database schema: apply and inspect migrations.", no_args_is_help=True)


def _urls(settings: Settings) -> dict[str, str]:
    settings.require("auth_database_url", "logs_database_url")
    assert settings.auth_database_url and settings.logs_database_url
    return {"auth": settings.auth_database_url, "logs": settings.logs_database_url}


def migrate_all(settings: Settings, *, create: bool = True) -> dict[str, list[str]]:
    """Create missing databases (optional), apply pending migrations, create partitions ahead."""
    from ledger.db import migrate, partitions
    from ledger.db.pool import connect

    applied: dict[str, list[str]] = {}
    for database, url in _urls(settings).items():
        if create:
            migrate.ensure_database(url)
        with connect(url) as conn:
            done = migrate.migrate(conn, database)  # type: ignore[arg-type]
            applied[database] = [f"{m.version:04d}_{m.name}" for m in done]
            if database == "logs":
                partitions.ensure_months_sync(conn, partitions.months_ahead(datetime.now(UTC)))
    return applied


@app.command("migrate")
def migrate_command(
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """Apply pending migrations to both databases (creating them if missing)."""
    with handle_errors(), reaching_the_stack():
        applied = migrate_all(load_settings())
        if json_output:
            print_json({"applied": applied})
            return
        for database, names in applied.items():
            if names:
                success(f"{database}: applied {', '.join(names)}")
            else:
                success(f"{database}: up to date")


@app.command("status")
def status_command(
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """Show every migration of both databases and whether it is applied."""
    from ledger.db import migrate
    from ledger.db.pool import connect

    with handle_errors(), reaching_the_stack():
        rows = []
        for database, url in _urls(load_settings()).items():
            with connect(url) as conn:
                for state in migrate.status(conn, database):  # type: ignore[arg-type]
                    rows.append({
                        "database": database,
                        "migration": f"{state.migration.version:04d}_{state.migration.name}",
                        "applied_at": state.applied_at.isoformat() if state.applied_at else None,
                    })
        if json_output:
            print_json(rows)
            return
        table("Migrations", ["database", "migration", "applied"],
              [[r["database"], r["migration"], r["applied_at"] or "[yellow]pending[/]"]
               for r in rows])
        pending = sum(1 for r in rows if r["applied_at"] is None)
        if pending:
            raise typer.Exit(3)  # scripts can tell "pending" from "up to date"
