"""`ledger errors rules list|add|remove|test`: a project's fingerprint rules through the gateway.

Changing rules needs an account token or a key with the triage scope.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from ledger.cli import flags
from ledger.cli.context import load_settings
from ledger.cli.output import console, handle_errors, print_json, success, table

app = typer.Typer(help="Fingerprint rules: send matching events to a group of your choosing.",
                  no_args_is_help=True)

PROJECT = flags.option(
    "--project", None, help="Project id or slug (default: the API key's project).")


def _project(client: Any, project: str | None) -> str:
    if project:
        return project.strip()
    settings: dict[str, Any] = client.get("/api/v1/settings")
    return str(settings["project_id"])


def _print_rules(settings: dict[str, Any]) -> None:
    table(None, ["#", "rule"], [[r["index"], r["rule"]] for r in settings["rules"]])
    in_app = settings.get("in_app") or {}
    console.print(f"[dim]revision {settings['revision']}; in-app include"
                  f" {in_app.get('include') or '-'}, exclude {in_app.get('exclude') or '-'}[/]",
                  highlight=False)


@app.command("list")
def list_command(project: str | None = PROJECT,
                 url: str | None = flags.GATEWAY_URL, api_key: str | None = flags.API_KEY,
                 json_output: bool = flags.option("--json", False, help="Print JSON.")) -> None:
    """List the project's fingerprint rules, in the order they are tried."""
    from ledger.cli.api import GatewayClient

    with handle_errors(), GatewayClient(load_settings(url=url), api_key=api_key) as client:
        settings = client.get(f"/api/v1/projects/{_project(client, project)}/grouping")
        if json_output:
            print_json(settings)
            return
        _print_rules(settings)


@app.command("add")
def add_command(
    rule: str = typer.Argument(..., help='e.g. "error.type:ConnectionError -> connection-errors"'
                               " or 'message:\"*timeout*\" -> {{ default }}, timeout'."),
    position: int | None = flags.option(
        "--position", None, min=0, help="Insert before this rule (default: last)."),
    project: str | None = PROJECT,
    url: str | None = flags.GATEWAY_URL, api_key: str | None = flags.API_KEY,
    json_output: bool = flags.option("--json", False, help="Print the new setting as JSON."),
) -> None:
    """Add a fingerprint rule; new events that match get its fingerprint."""
    from ledger.cli.api import GatewayClient

    with handle_errors(), GatewayClient(load_settings(url=url), api_key=api_key) as client:
        body: dict[str, Any] = {"rule": rule}
        if position is not None:
            body["position"] = position
        settings = client.request(
            "POST", f"/api/v1/projects/{_project(client, project)}/fingerprint-rules",
            json=body)
        if json_output:
            print_json(settings)
            return
        success(f"rule added (revision {settings['revision']})")
        _print_rules(settings)


@app.command("remove")
def remove_command(index: int = typer.Argument(..., help="The rule's number (from `list`)."),
                   project: str | None = PROJECT,
                   url: str | None = flags.GATEWAY_URL, api_key: str | None = flags.API_KEY,
                   json_output: bool = flags.option(
                       "--json", False, help="Print the new setting as JSON.")) -> None:
    """Remove a fingerprint rule."""
    from ledger.cli.api import GatewayClient

    with handle_errors(), GatewayClient(load_settings(url=url), api_key=api_key) as client:
        settings = client.request(
            "DELETE", f"/api/v1/projects/{_project(client, project)}/fingerprint-rules/{index}")
        if json_output:
            print_json(settings)
            return
        success(f"rule {index} removed (revision {settings['revision']})")
        _print_rules(settings)


@app.command("test")
def test_command(
    event: str = typer.Argument(..., help="A log as JSON, a file holding one, or - for stdin."),
    rule: list[str] = flags.option(
        "--rule", [], help="Try this rule instead of the stored ones; repeat for several."),
    project: str | None = PROJECT,
    url: str | None = flags.GATEWAY_URL, api_key: str | None = flags.API_KEY,
    json_output: bool = flags.option("--json", False, help="Print JSON."),
) -> None:
    """Show which fingerprint an event would get, and which rule (if any) decided it."""
    from ledger.cli.api import GatewayClient
    from ledger.errors import InvalidInputError

    with handle_errors(), GatewayClient(load_settings(url=url), api_key=api_key) as client:
        text = sys.stdin.read() if event == "-" else (
            Path(event).read_text() if not event.lstrip().startswith("{") else event)
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise InvalidInputError(f"the event is not JSON: {exc}") from None
        body: dict[str, Any] = {"event": payload}
        if rule:
            body["rules"] = rule
        result = client.request(
            "POST", f"/api/v1/projects/{_project(client, project)}/grouping/test",
            json=body)
        if json_output:
            print_json(result)
            return
        matched = result.get("rule")
        console.print(f"fingerprint {result['fingerprint']} ({result['method']})",
                      highlight=False, markup=False)
        console.print(f"rule: {matched['matcher']}" if matched else "no rule matched",
                      highlight=False, markup=False)
