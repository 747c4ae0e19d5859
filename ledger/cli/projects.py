"""`ledger projects create|list|show|update`: projects, their owners and limits."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import typer

from ledger.cli import flags
from ledger.cli.authdb import run_auth, when
from ledger.cli.output import console, handle_errors, print_json, success, table

if TYPE_CHECKING:
    from ledger.core.accounts import Account
    from ledger.core.api_keys import ApiKeyRow
    from ledger.core.projects import Project

app = typer.Typer(help="Projects: create them, list them, show and change their limits.",
                  no_args_is_help=True)

NO_OWNER = ("no account to own the project: pass --owner EMAIL or create one with"
            " `ledger accounts create`")


def _dsn_template(project: Project) -> str:
    from ledger.cli.authdb import gateway_host
    from ledger.cli.context import load_settings

    return f"http://<API key>@{gateway_host(load_settings())}/{project.dsn_id}"


def _show(project: Project, owner: str, keys: list[ApiKeyRow] | None = None) -> None:
    grid = [
        ("id", project.id), ("name", project.name), ("slug", project.slug),
        ("environment", project.environment), ("owner", owner),
        ("retention", f"{project.retention_days} days"),
        ("daily quota", f"{project.daily_quota:,} logs"),
        ("rate limits", f"{project.rate_limit_minute:,}/min, {project.rate_limit_hour:,}/h"),
        ("created", when(project.created_at)),
        ("Sentry DSN", _dsn_template(project)),
    ]
    if keys is not None:
        active = sum(1 for k in keys if k.status == "active")
        grid.append(("API keys", f"{active} active, {len(keys) - active} revoked"))
    width = max(len(label) for label, _ in grid)
    for label, value in grid:
        console.print(f"[bold]{label:<{width}}[/]  {value}", highlight=False)


@app.command("create")
def create_command(
    name: str = typer.Argument(..., help="Display name, e.g. \"Billing API\"."),
    slug: str | None = flags.option(
        "--slug", None, help="URL name: a-z, 0-9 and '-', at most 64 (default: from NAME)."),
    environment: str = flags.option(
        "--environment", "production", help="Environment label, e.g. production or staging."),
    owner: str | None = flags.option(
        "--owner", None, help="Email of the owning account (default: admin@ledger.local)."),
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """Create a project (limits start from the LEDGER_AUTH_* defaults)."""
    from ledger.cli.context import load_settings
    from ledger.core import accounts, projects
    from ledger.core.bootstrap import DEFAULT_EMAIL
    from ledger.errors import NotFoundError

    async def operation(conn: Any, redis: Any) -> tuple[Project, Account]:
        if owner is None:
            try:
                account = await accounts.get_account_by_email(conn, DEFAULT_EMAIL)
            except NotFoundError:
                raise NotFoundError(NO_OWNER) from None
        else:
            account = await accounts.get_account_by_email(conn, owner)
        project = await projects.create_project(
            conn, account_id=account.id, name=name, slug=slug, environment=environment,
            defaults=projects.ProjectDefaults.from_settings(settings))
        return project, account

    with handle_errors():
        settings = load_settings()
        project, account = run_auth(operation, settings)
        if json_output:
            print_json(dataclasses.asdict(project) | {"owner_email": account.email})
            return
        success(f"created project {project.slug} ({project.id}) owned by {account.email}")
        console.print(f"next: ledger keys create --project {project.slug}", highlight=False)


@app.command("list")
def list_command(
    owner: str | None = flags.option("--owner", None, help="Only projects of this account."),
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """List projects (all of them, or one account's)."""
    from ledger.core import accounts, projects

    async def operation(conn: Any, redis: Any) -> tuple[list[Project], dict[str, str]]:
        account_id = None
        if owner is not None:
            account_id = (await accounts.get_account_by_email(conn, owner)).id
        emails = {a.id: a.email for a in await accounts.list_accounts(conn)}
        return await projects.list_projects(conn, account_id), emails

    with handle_errors():
        found, emails = run_auth(operation)
        if json_output:
            print_json([dataclasses.asdict(p) | {"owner_email": emails.get(p.account_id)}
                        for p in found])
            return
        # Ids are in `ledger projects show` and --json: the table stays readable at 80 columns.
        table("Projects",
              ["slug", "name", "environment", "owner", "retention", "logs/day", "requests"],
              [[p.slug, p.name, p.environment, emails.get(p.account_id, p.account_id),
                f"{p.retention_days}d", f"{p.daily_quota:,}",
                f"{p.rate_limit_minute:,}/min {p.rate_limit_hour:,}/h"] for p in found])


@app.command("show")
def show_command(
    project: str = typer.Argument(..., help="Project slug or id."),
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """Show one project: owner, limits and how many keys it has."""
    from ledger.core import accounts, api_keys, projects

    async def operation(conn: Any, redis: Any) -> tuple[Project, Account, list[ApiKeyRow]]:
        found = await projects.get_project(conn, project)
        account = await accounts.get_account(conn, found.account_id)
        return found, account, await api_keys.list_keys(conn, found.id)

    with handle_errors():
        found, account, keys = run_auth(operation)
        if json_output:
            print_json(dataclasses.asdict(found) | {
                "owner_email": account.email, "dsn_template": _dsn_template(found),
                "active_keys": sum(1 for k in keys if k.status == "active"),
            })
            return
        _show(found, account.email, keys)


@app.command("update")
def update_command(
    project: str = typer.Argument(..., help="Project slug or id."),
    name: str | None = flags.option("--name", None, help="New display name."),
    environment: str | None = flags.option("--environment", None, help="New environment label."),
    retention_days: int | None = flags.option(
        "--retention-days", None, min=1, help="Keep logs this many days."),
    daily_quota: int | None = flags.option(
        "--daily-quota", None, min=0, help="Logs accepted per day (UTC)."),
    rate_limit_minute: int | None = flags.option(
        "--rate-limit-minute", None, min=0, help="Requests per minute per key."),
    rate_limit_hour: int | None = flags.option(
        "--rate-limit-hour", None, min=0, help="Requests per hour per key."),
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """Change a project's name, environment, retention, quota or rate limits.

    Keys that follow the project's limits pick up the change on their next request.
    """
    from ledger.core import accounts, projects

    async def operation(conn: Any, redis: Any) -> tuple[Project, Account]:
        updated = await projects.update_project(
            conn, redis, project, name=name, environment=environment,
            retention_days=retention_days, daily_quota=daily_quota,
            rate_limit_minute=rate_limit_minute, rate_limit_hour=rate_limit_hour)
        return updated, await accounts.get_account(conn, updated.account_id)

    with handle_errors():
        updated, account = run_auth(operation)
        if json_output:
            print_json(dataclasses.asdict(updated) | {"owner_email": account.email})
            return
        success(f"updated project {updated.slug}")
        _show(updated, account.email)
