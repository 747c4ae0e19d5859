"""`ledger errors list|show|resolve|ignore|reopen|merge|unmerge|rules`: error groups through
the gateway.

Uses LEDGER_URL and LEDGER_API_KEY (a key with the read scope), or what `ledger up` saved.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.text import Text

from ledger.cli import error_rules, flags
from ledger.cli.context import load_settings
from ledger.cli.ids import checked_id, short_ids
from ledger.cli.logs import level_text, when
from ledger.cli.output import console, handle_errors, one_line_table, print_json, success

app = typer.Typer(help="Error groups: list them, see why events were grouped, triage them.",
                  no_args_is_help=True)
app.add_typer(error_rules.app, name="rules")

_GROUP_ID_HELP = "The group id, or its first 6+ characters (as `ledger errors list` shows)."
STATUS_STYLES = {"unresolved": "red", "resolved": "green", "ignored": "dim"}


def _status(status: str) -> str:
    return f"[{STATUS_STYLES.get(status, '')}]{status}[/]"


def group_path(group_id: str, action: str = "") -> str:
    """The REST path of a group named by its id or a unique prefix of it."""
    return f"/api/v1/error-groups/{checked_id('error group', group_id)}{action}"


def _set_status(group_id: str, status: str, release: str | None = None, *,
                url: str | None = None, api_key: str | None = None) -> dict[str, Any]:
    from ledger.cli.api import GatewayClient

    path = group_path(group_id, "/status")
    with GatewayClient(load_settings(url=url), api_key=api_key) as client:
        body: dict[str, Any] = {"status": status}
        if release:
            body["resolved_in_release"] = release
        group: dict[str, Any] = client.request("PATCH", path, json=body)
        return group


def _done(group: dict[str, Any], json_output: bool, message: str) -> None:
    if json_output:
        print_json(group)
    else:
        success(message)


@app.command("list")
def list_command(
    project: str | None = flags.option(
        "--project", None, help="Project id or slug (default: the API key's project)."),
    status: list[str] = flags.option(
        "--status", [], help="unresolved, resolved or ignored; repeat for several (default: all)."),
    sort: str = flags.option("--sort", "last_seen", help="last_seen, count or first_seen."),
    search: str | None = flags.option("--search", None, help="Text in the title."),
    limit: int = flags.option("--limit", 50, min=1, max=1000, help="How many groups."),
    url: str | None = flags.GATEWAY_URL, api_key: str | None = flags.API_KEY,
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """List a project's error groups, most recently seen first."""
    from ledger.cli.api import GatewayClient

    with handle_errors(), GatewayClient(load_settings(url=url), api_key=api_key) as client:
        page = client.get("/api/v1/error-groups", project_id=project, status=",".join(status),
                          sort=sort, search=search, limit=limit)
        if json_output:
            print_json(page)
            return
        groups = page["error_groups"]
        short = short_ids(g["id"] for g in groups)
        one_line_table(["id", "status", "level", "events", "last seen", "title"],
                       [[short[g["id"]], Text.from_markup(_status(g["status"])),
                         Text.from_markup(level_text(g["level"])), g["event_count"],
                         when(g["last_seen"])[:16], g["title"]] for g in groups],
                       flexible="title")
        console.print(f"[dim]{len(page['error_groups'])} of {page['total']} groups[/]",
                      highlight=False)


@app.command("show")
def show_command(
    group_id: str = typer.Argument(..., help=_GROUP_ID_HELP),
    url: str | None = flags.GATEWAY_URL, api_key: str | None = flags.API_KEY,
    json_output: bool = flags.option("--json", False, help="Print the result as JSON."),
) -> None:
    """Show an error group: counts, status, why its events were grouped, a sample event."""
    from ledger.cli.api import GatewayClient

    with handle_errors(), GatewayClient(load_settings(url=url), api_key=api_key) as client:
        group = client.get(group_path(group_id))
        if json_output:
            print_json(group)
            return
        console.print(f"[bold]{escape(group['title'])}[/]", highlight=False)
        resolved = ""
        if group["status"] == "resolved":
            resolved = f" in release {group['resolved_in_release']}" if group.get(
                "resolved_in_release") else ""
            resolved += f" at {when(group['resolved_at'])}" if group.get("resolved_at") else ""
        facts = [
            ("id", group["id"]), ("status", _status(group["status"]) + resolved),
            ("level", level_text(group["level"])), ("type", group["log_type"]),
            ("events", str(group["event_count"])), ("first seen", when(group["first_seen"])),
            ("last seen", when(group["last_seen"])),
            ("last release", escape(group.get("last_release") or "-")),
            ("fingerprint", escape(f"{group['fingerprint']} (v{group['fingerprint_version']})")),
            ("why grouped", escape(group["why_grouped"])),
        ]
        if group.get("merged_into"):
            facts.append(("merged into", group["merged_into"]))
        for name, value in facts:
            console.print(f"[dim]{name:>13}[/]  {value}", highlight=False)
        _print_merges(group)
        sample = group.get("sample_log")
        if sample:
            console.print("\n[bold]sample event[/]", highlight=False)
            console.print(f"{when(sample['timestamp'])}  {sample.get('message') or ''}",
                          highlight=False, markup=False)
            if sample.get("stack_trace"):
                console.print(sample["stack_trace"], highlight=False, markup=False)


@app.command("resolve")
def resolve_command(
    group_id: str = typer.Argument(..., help=_GROUP_ID_HELP),
    release: str | None = flags.option(
        "--release", None,
        help="Fixed in this release: events from older releases do not reopen it."),
    url: str | None = flags.GATEWAY_URL, api_key: str | None = flags.API_KEY,
    json_output: bool = flags.option("--json", False, help="Print the group as JSON."),
) -> None:
    """Mark an error group resolved; a new event (from this release or newer) reopens it."""
    with handle_errors():
        group = _set_status(group_id, "resolved", release, url=url, api_key=api_key)
        suffix = f" in release {group['resolved_in_release']}" if release else ""
        _done(group, json_output, f"resolved {group['title']!r}{suffix}")


@app.command("ignore")
def ignore_command(
    group_id: str = typer.Argument(..., help=_GROUP_ID_HELP),
    url: str | None = flags.GATEWAY_URL, api_key: str | None = flags.API_KEY,
    json_output: bool = flags.option("--json", False, help="Print the group as JSON."),
) -> None:
    """Ignore an error group: it stays out of the unresolved list."""
    with handle_errors():
        group = _set_status(group_id, "ignored", url=url, api_key=api_key)
        _done(group, json_output, f"ignored {group['title']!r}")


@app.command("reopen")
def reopen_command(
    group_id: str = typer.Argument(..., help=_GROUP_ID_HELP),
    url: str | None = flags.GATEWAY_URL, api_key: str | None = flags.API_KEY,
    json_output: bool = flags.option("--json", False, help="Print the group as JSON."),
) -> None:
    """Mark a resolved or ignored error group unresolved again."""
    with handle_errors():
        group = _set_status(group_id, "unresolved", url=url, api_key=api_key)
        _done(group, json_output, f"reopened {group['title']!r}")


def _print_merges(group: dict[str, Any]) -> None:
    merges = group.get("merges") or []
    if not merges:
        return
    console.print("\n[bold]merges[/]", highlight=False)
    for m in merges:
        into = m["target_group_id"] == str(group["id"])
        what = (f"{m['source_group_id']} merged in" if into
                else f"merged into {m['target_group_id']}")
        by = f" by {m['merged_by']}" if m.get("merged_by") else ""
        undone = (f", unmerged {when(m['unmerged_at'])}"
                  + (f" by {m['unmerged_by']}" if m.get("unmerged_by") else "")
                  if m.get("unmerged_at") else "")
        console.print(f"  {when(m['merged_at'])}  {what} ({m['moved_count']} events){by}{undone}",
                      highlight=False, markup=False)


@app.command("merge")
def merge_command(
    target: str = typer.Argument(..., help="The group that survives."),
    others: list[str] = typer.Argument(..., help="Groups merged into it."),
    url: str | None = flags.GATEWAY_URL, api_key: str | None = flags.API_KEY,
    json_output: bool = flags.option("--json", False, help="Print the surviving group as JSON."),
) -> None:
    """Merge groups into TARGET: their counts move, and their later events go to TARGET.

    Groups are named by their ids or unique prefixes of them (6+ characters).
    """
    from ledger.cli.api import GatewayClient

    with handle_errors():
        path = group_path(target, "/merge")
        sources = [checked_id("error group", o) for o in others]
        with GatewayClient(load_settings(url=url), api_key=api_key) as client:
            group = client.request("POST", path, json={"group_ids": sources})
        _done(group, json_output, f"merged {len(others)} group(s) into {group['title']!r}"
                                  f" ({group['event_count']} events)")


@app.command("unmerge")
def unmerge_command(
    target: str = typer.Argument(..., help="The group it was merged into."),
    group_id: str = typer.Argument(..., help="The group to take back out."),
    url: str | None = flags.GATEWAY_URL, api_key: str | None = flags.API_KEY,
    json_output: bool = flags.option("--json", False, help="Print the target group as JSON."),
) -> None:
    """Undo a merge: GROUP_ID is listed again and gets its later events back."""
    from ledger.cli.api import GatewayClient

    with handle_errors():
        path = group_path(target, "/unmerge")
        source = checked_id("error group", group_id)
        with GatewayClient(load_settings(url=url), api_key=api_key) as client:
            group = client.request("POST", path, json={"group_id": source})
        _done(group, json_output, f"unmerged {source} from {group['title']!r}"
                                  f" ({group['event_count']} events left)")
