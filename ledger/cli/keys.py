"""`ledger keys create|list|revoke`: API keys of a project."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import typer

from ledger.cli import flags
from ledger.cli.authdb import gateway_host, run_auth, when
from ledger.cli.context import load_settings
from ledger.cli.output import console, handle_errors, print_json, success, warn

if TYPE_CHECKING:
    from ledger.config import Settings
    from ledger.core.api_keys import ApiKeyRow

app = typer.Typer(help="API keys: create, list and revoke the keys of a project.",
                  no_args_is_help=True)

SHOWN_ONCE = "store this key now: it is not stored in clear and will not be shown again"


def _limits(key: ApiKeyRow) -> str:
    if key.rate_limit_minute is None and key.rate_limit_hour is None:
        return "project's"
    minute = "project's" if key.rate_limit_minute is None else str(key.rate_limit_minute)
    hour = "project's" if key.rate_limit_hour is None else str(key.rate_limit_hour)
    return f"{minute}/min, {hour}/h"


def _as_json(key: ApiKeyRow) -> dict[str, Any]:
    return dataclasses.asdict(key)


@app.command("create")
def create_command(
    project: str = flags.option("--project", ..., help="Project slug or id."),
    name: str = flags.option("--name", "", help="A label, e.g. where the key is used."),
    scope: list[str] = flags.option(
        "--scope", [],
        help="ingest, read or triage (change error groups' status); repeat for several (default:"
             " ingest and read). Ship applications with ingest."),
    rate_limit_minute: int | None = flags.option(
        "--rate-limit-minute", None, min=0, help="Own requests/minute (default: the project's)."),
    rate_limit_hour: int | None = flags.option(
        "--rate-limit-hour", None, min=0, help="Own requests/hour (default: the project's)."),
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """Create an API key for a project and print it ONCE."""
    from ledger.core import api_keys, projects, sentry

    async def operation(conn: Any, redis: Any) -> tuple[ApiKeyRow, str, str, int]:
        found = await projects.get_project(conn, project)
        key, full_key = await api_keys.create_key(
            conn, found.id, name, scope, rate_limit_minute=rate_limit_minute,
            rate_limit_hour=rate_limit_hour)
        return key, full_key, found.slug, found.dsn_id

    with handle_errors():
        key, full_key, slug, dsn_id = run_auth(operation)
        dsn = sentry.dsn(full_key, gateway_host(load_settings()), dsn_id)
        if json_output:
            print_json(_as_json(key) | {"full_key": full_key, "project_slug": slug,
                                        "dsn": dsn, "warning": SHOWN_ONCE})
            return
        success(f"created API key {key.key_id} for project {slug}"
                f" (scopes: {', '.join(key.scopes)})")
        console.print(full_key, highlight=False, soft_wrap=True)
        console.print(f"Sentry SDK DSN: {dsn}", highlight=False, soft_wrap=True)
        warn(SHOWN_ONCE)


@app.command("list")
def list_command(
    project: str | None = flags.option(
        "--project", None, help="Project slug or id (default: the API key's project)."),
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """List the API keys of a project, active and revoked (never their secrets)."""
    from ledger.core import api_keys, projects

    settings = load_settings()

    async def operation(conn: Any, redis: Any) -> tuple[str, list[ApiKeyRow]]:
        found = await projects.get_project(conn, project or await _key_project(conn, settings))
        return found.slug, await api_keys.list_keys(conn, found.id)

    with handle_errors():
        slug, keys = run_auth(operation, settings)
        if json_output:
            print_json([_as_json(k) for k in keys])
            return
        _print_table(slug, keys)


async def _key_project(conn: Any, settings: Settings) -> str:
    """The project of the API key in use, like `ledger logs` and `ledger errors` default to."""
    from ledger.core import api_keys
    from ledger.errors import InvalidInputError

    if not settings.api_key or not api_keys.looks_like_key(str(settings.api_key)):
        raise InvalidInputError("which project? pass --project <slug> (no API key is set to"
                                " default to its project)")
    key = await api_keys.get_key(conn, api_keys.parse_key(str(settings.api_key))[0])
    return key.project_id


def _print_table(slug: str, keys: list[ApiKeyRow]) -> None:
    from rich.table import Table

    out = Table(title=f"API keys of {slug}", title_justify="left", header_style="bold")
    out.add_column("key id", no_wrap=True)  # copied into `ledger keys revoke`: keep it whole
    for column in ("name", "scopes", "status", "rate limits", "created", "last used"):
        out.add_column(column)
    for k in keys:
        status = k.status if k.status == "active" else f"[red]{k.status}[/]"
        out.add_row(k.key_id, k.name, ", ".join(k.scopes), status, _limits(k),
                    when(k.created_at), when(k.last_used_at, "never"))
    console.print(out)


@app.command("revoke")
def revoke_command(
    key: str = typer.Argument(..., help="The key id (as `ledger keys list` shows), its first 6+"
                                        " characters, or the full key."),
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """Revoke an API key: every gateway refuses it within a second."""
    from ledger.core import api_keys

    async def operation(conn: Any, redis: Any) -> tuple[ApiKeyRow, bool]:
        found = await api_keys.find_key(conn, key)
        # Revoke again all the same: it also clears any cached copy left behind.
        revoked = await api_keys.revoke_key(conn, redis, found.key_id)
        return revoked, found.status == "revoked"

    with handle_errors():
        revoked, already = run_auth(operation)
        if json_output:
            print_json(_as_json(revoked) | {"already_revoked": already})
        elif already:
            success(f"API key {revoked.key_id} ({revoked.key_prefix}) was already revoked"
                    f" (at {when(revoked.revoked_at)})")
        else:
            success(f"revoked API key {revoked.key_id} ({revoked.key_prefix})")
