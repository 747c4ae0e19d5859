"""`ledger accounts create|list`: the people who own projects."""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any

import typer

from ledger.cli import flags
from ledger.cli.authdb import run_auth, when
from ledger.cli.output import console, handle_errors, print_json, success, table, warn

if TYPE_CHECKING:
    from ledger.core.accounts import Account

app = typer.Typer(help="Accounts: the people who log in and own projects.",
                  no_args_is_help=True)


@app.command("create")
def create_command(
    email: str = typer.Argument(..., help="Login email."),
    name: str = flags.option("--name", "", help="Display name."),
    password: str | None = flags.option(
        "--password", None,
        help="At least 8 characters. Default: asked for on a terminal, else generated and printed"
             " once."),
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """Create an account that can log in and own projects."""
    import secrets

    from ledger.core import accounts

    generated = None
    if password is None:
        if sys.stdin.isatty() and not json_output:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = generated = secrets.token_urlsafe(12)
    chosen = password

    async def operation(conn: Any, redis: Any) -> Account:
        return await accounts.register(conn, email, chosen, name)

    with handle_errors():
        account = run_auth(operation)
        if json_output:
            print_json(dataclasses.asdict(account) | {"password": generated})
            return
        success(f"created account {account.email} ({account.id})")
        if generated:
            console.print(f"password: {generated}", highlight=False, soft_wrap=True)
            warn("store this password now: it will not be shown again")


@app.command("list")
def list_command(
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """List every account."""
    from ledger.core import accounts, projects

    async def operation(conn: Any, redis: Any) -> tuple[list[Account], dict[str, int]]:
        counts: dict[str, int] = {}
        for project in await projects.list_projects(conn):
            counts[project.account_id] = counts.get(project.account_id, 0) + 1
        return await accounts.list_accounts(conn), counts

    with handle_errors():
        found, counts = run_auth(operation)
        if json_output:
            print_json([dataclasses.asdict(a) | {"projects": counts.get(a.id, 0)}
                        for a in found])
            return
        table("Accounts", ["email", "name", "projects", "created", "id"],
              [[a.email, a.name, counts.get(a.id, 0), when(a.created_at), a.id] for a in found])
