"""`ledger alerts`: rules, channels, history and snooze of a project's alerts.

Like `ledger projects`, these work on the databases directly (the project is looked up in the
auth database, the alerts live in the logs database); no daemon needs to be running, except
that the alerts daemon is what evaluates the rules and sends. `channels test` sends from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from ledger.cli import flags
from ledger.cli.output import console, handle_errors, print_json, success, table, warn

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

app = typer.Typer(help="Alerts: rules, channels, history and snooze.", no_args_is_help=True)
rules_app = typer.Typer(help="Alert rules of a project.", no_args_is_help=True)
channels_app = typer.Typer(help="Where alerts are sent: webhook, slack, email.",
                           no_args_is_help=True)
app.add_typer(rules_app, name="rules")
app.add_typer(channels_app, name="channels")

PROJECT_HELP = "Project slug or id (default: the `ledger up` default project)."
DEFAULT_PROJECT = "default"


def _run(project: str, operation: Callable[[psycopg.AsyncConnection[Any], str], Awaitable[T]],
         ) -> T:
    """``operation(logs connection, project id)`` after finding the project in auth."""
    import asyncio

    from ledger.cli.context import load_settings, reaching_the_stack
    from ledger.core import projects
    from ledger.core.connections import connect_postgres

    settings = load_settings()
    settings.require("auth_database_url", "logs_database_url")
    assert settings.auth_database_url and settings.logs_database_url

    async def main() -> T:
        auth = await connect_postgres(settings.auth_database_url or "")
        try:
            found = await projects.get_project(auth, project)
        finally:
            await auth.close()
        logs = await connect_postgres(settings.logs_database_url or "")
        try:
            return await operation(logs, found.id)
        finally:
            await logs.close()

    with reaching_the_stack():
        return asyncio.run(main())


def _cooldown(raw: str | None) -> int | None:
    from ledger.core.alerts.rules import parse_duration

    if raw is None:
        return None
    return 0 if raw.strip() in ("0", "0s") else int(parse_duration(raw).total_seconds())


def _rule_body(*, name: str | None, kind: str | None, threshold: float | None,
               window: int | None, environment: list[str], level: list[str],
               log_type: list[str], release: list[str], cooldown: str | None,
               channel: list[str], enabled: bool | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "kind": kind, "window_minutes": window,
                            "cooldown_seconds": _cooldown(cooldown), "enabled": enabled}
    if threshold is not None:
        body["threshold"] = int(threshold) if kind == "group_frequency" else threshold
    filters = {k: v for k, v in (("environment", environment), ("level", level),
                                 ("log_type", log_type), ("release", release)) if v}
    if filters:
        body["filters"] = filters
    if channel:
        body["channels"] = channel
    return {k: v for k, v in body.items() if v is not None}


def _show_rules(found: list[dict[str, Any]]) -> None:
    rows = []
    for r in found:
        shape = ""
        if r["threshold"] is not None:
            shape = f"≥ {r['threshold']:g}"
        if r["window_minutes"]:
            shape += f" in {r['window_minutes']} min"
        filters = "; ".join(f"{k}={','.join(v)}" for k, v in r["filters"].items())
        state = "on" if r["enabled"] else "off"
        if r["snoozed_until"]:
            state += f", snoozed until {r['snoozed_until'][:16]}"
        rows.append((r["id"], r["name"], r["kind"], shape.strip(), filters,
                     f"{r['cooldown_seconds']}s", len(r["channels"]), state))
    table("Alert rules", ("id", "name", "kind", "when", "filters", "cooldown", "channels",
                          "state"), rows)


OPT_THRESHOLD = flags.option(
    "--threshold", None, help="Events (group_frequency) or errors per minute (error_rate).")
OPT_WINDOW = flags.option("--window", None, help="Minutes (group_frequency, error_rate, no_logs).")
OPT_ENV = flags.option("--environment", [], help="Only this environment (repeatable).")
OPT_LEVEL = flags.option("--level", [], help="Only this level (repeatable).")
OPT_TYPE = flags.option("--type", [], help="Only this log type (repeatable).")
OPT_RELEASE = flags.option("--release", [], help="Only this release (repeatable).")
OPT_COOLDOWN = flags.option(
    "--cooldown", None, help="One alert per rule and group per this long: 30m, 1h, 0 (default 1h).")
OPT_CHANNEL = flags.option("--channel", [], help="Channel name or id (repeatable).")
OPT_JSON = flags.option("--json", False, help="Print the result as JSON.")


@rules_app.command("list")
def rules_list(project: str = flags.option("--project", DEFAULT_PROJECT, help=PROJECT_HELP),
               json_output: bool = OPT_JSON) -> None:
    """List the project's alert rules."""
    from ledger.core.alerts import rules

    async def operation(conn: Any, project_id: str) -> list[dict[str, Any]]:
        return [r.public() for r in await rules.list_for(conn, project_id)]

    with handle_errors():
        found = _run(project, operation)
        print_json(found) if json_output else _show_rules(found)


@rules_app.command("add")
def rules_add(
    name: str = flags.option("--name", ..., help="A name for the rule."),
    kind: str = flags.option(
        "--kind", ..., help="new_group, regression, group_frequency, error_rate or no_logs."),
    threshold: float | None = OPT_THRESHOLD, window: int | None = OPT_WINDOW,
    environment: list[str] = OPT_ENV, level: list[str] = OPT_LEVEL,
    log_type: list[str] = OPT_TYPE, release: list[str] = OPT_RELEASE,
    cooldown: str | None = OPT_COOLDOWN, channel: list[str] = OPT_CHANNEL,
    project: str = flags.option("--project", DEFAULT_PROJECT, help=PROJECT_HELP),
    json_output: bool = OPT_JSON,
) -> None:
    """Add an alert rule (it watches what happens from now on)."""
    from ledger.core.alerts import manage

    with handle_errors():
        body = _rule_body(name=name, kind=kind, threshold=threshold, window=window,
                          environment=environment, level=level, log_type=log_type,
                          release=release, cooldown=cooldown, channel=channel, enabled=None)
        rule = _run(project, lambda conn, pid: manage.create_rule(conn, pid, body))
        if json_output:
            print_json(rule)
            return
        success(f"added rule {rule['name']!r} ({rule['kind']}), id {rule['id']}")


@rules_app.command("update")
def rules_update(
    rule: str = typer.Argument(..., help="Rule name or id."),
    name: str | None = flags.option("--name", None, help="A new name."),
    threshold: float | None = OPT_THRESHOLD, window: int | None = OPT_WINDOW,
    environment: list[str] = OPT_ENV, level: list[str] = OPT_LEVEL,
    log_type: list[str] = OPT_TYPE, release: list[str] = OPT_RELEASE,
    cooldown: str | None = OPT_COOLDOWN, channel: list[str] = OPT_CHANNEL,
    enabled: bool | None = flags.option(
        "--enabled", None, secondary="--disabled", help="Turn it on or off."),
    project: str = flags.option("--project", DEFAULT_PROJECT, help=PROJECT_HELP),
    json_output: bool = OPT_JSON,
) -> None:
    """Change a rule: only the options given change (filters given replace all filters)."""
    from ledger.core.alerts import manage, rules

    with handle_errors():
        body = _rule_body(name=name, kind=None, threshold=threshold, window=window,
                          environment=environment, level=level, log_type=log_type,
                          release=release, cooldown=cooldown, channel=channel, enabled=enabled)

        async def operation(conn: Any, project_id: str) -> dict[str, Any]:
            if "threshold" in body:
                current = await rules.get(conn, project_id, rule)
                if current.kind == "group_frequency":
                    body["threshold"] = int(body["threshold"])
            return await manage.update_rule(conn, project_id, rule, body)

        updated = _run(project, operation)
        if json_output:
            print_json(updated)
            return
        success(f"updated rule {updated['name']!r}")


@rules_app.command("remove")
def rules_remove(rule: str = typer.Argument(..., help="Rule name or id."),
                 project: str = flags.option(
                     "--project", DEFAULT_PROJECT, help=PROJECT_HELP),
                 json_output: bool = OPT_JSON) -> None:
    """Remove a rule (the alerts it fired stay in the history)."""
    from ledger.core.alerts import manage

    with handle_errors():
        removed = _run(project, lambda conn, pid: manage.remove_rule(conn, pid, rule))
        if json_output:
            print_json(removed)
            return
        success(f"removed rule {removed['name']!r}")


# -- channels -----------------------------------------------------------------------------------


@channels_app.command("add")
def channels_add(
    name: str = flags.option("--name", ..., help="A name for the channel."),
    kind: str = flags.option("--kind", ..., help="webhook, slack or email."),
    url: str | None = flags.option("--webhook-url", None, help="webhook/slack: the https:// URL."),
    secret: str | None = flags.option(
        "--secret", None, help="webhook: signing secret (default: generated and shown once)."),
    allow_insecure_localhost: bool = flags.option(
        "--allow-insecure-localhost", False, help="Accept http:// for a localhost receiver."),
    smtp_host: str | None = flags.option("--smtp-host", None, help="email: SMTP server."),
    smtp_port: int | None = flags.option("--smtp-port", None, help="email: port (587/465)."),
    security: str = flags.option("--security", "starttls", help="email: starttls, tls, none."),
    username: str | None = flags.option("--smtp-user", None, help="email: SMTP login."),
    password: str | None = flags.option("--smtp-password", None, help="email: SMTP password."),
    sender: str | None = flags.option("--mail-from", None, help="email: the From address."),
    to: list[str] = flags.option("--mail-to", [], help="email: a recipient (repeatable)."),
    no_tls_verify: bool = flags.option(
        "--no-tls-verify", False, help="email: accept a self-signed certificate."),
    project: str = flags.option("--project", DEFAULT_PROJECT, help=PROJECT_HELP),
    json_output: bool = OPT_JSON,
) -> None:
    """Add a channel. An e-mail channel is stored only once its server accepted the login."""
    from ledger.core.alerts import manage

    body: dict[str, Any] = {"name": name, "kind": kind}
    if kind == "email":
        body |= {"host": smtp_host, "port": smtp_port, "security": security,
                 "username": username, "password": password, "from": sender, "to": to,
                 "tls_verify": not no_tls_verify}
    else:
        body |= {"url": url, "secret": secret}
        if allow_insecure_localhost:
            body["allow_insecure_localhost"] = True
    body = {k: v for k, v in body.items() if v is not None}
    with handle_errors():
        channel = _run(project, lambda conn, pid: manage.create_channel(conn, pid, body))
        if json_output:
            print_json(channel)
            return
        success(f"added {channel['kind']} channel {channel['name']!r}, id {channel['id']}")
        if channel.get("secret"):
            console.print(f"signing secret: {channel['secret']}", highlight=False,
                          soft_wrap=True)
            warn(manage.SECRET_WARNING)


@channels_app.command("list")
def channels_list(project: str = flags.option("--project", DEFAULT_PROJECT, help=PROJECT_HELP),
                  json_output: bool = OPT_JSON) -> None:
    """List the project's channels (never their secrets)."""
    from ledger.core.alerts import channels

    async def operation(conn: Any, project_id: str) -> list[dict[str, Any]]:
        return [c.public() for c in await channels.list_for(conn, project_id)]

    with handle_errors():
        found = _run(project, operation)
        if json_output:
            print_json(found)
            return
        rows = []
        for c in found:
            config = c["config"]
            where = config.get("url") or (f"{config.get('host')}:{config.get('port')}"
                                          f" → {', '.join(config.get('to') or [])}")
            rows.append((c["id"], c["name"], c["kind"], where,
                         "yes" if c["has_secret"] else "no"))
        table("Alert channels", ("id", "name", "kind", "to", "secret set"), rows)


@channels_app.command("remove")
def channels_remove(channel: str = typer.Argument(..., help="Channel name or id."),
                    project: str = flags.option(
                        "--project", DEFAULT_PROJECT, help=PROJECT_HELP),
                    json_output: bool = OPT_JSON) -> None:
    """Remove a channel that no rule uses."""
    from ledger.core.alerts import channels

    async def operation(conn: Any, project_id: str) -> str:
        async with conn.transaction():
            return (await channels.delete(conn, project_id, channel)).name

    with handle_errors():
        name = _run(project, operation)
        if json_output:
            print_json({"removed_channel": name})
            return
        success(f"removed channel {name!r}")


@channels_app.command("test")
def channels_test(channel: str = typer.Argument(..., help="Channel name or id."),
                  project: str = flags.option("--project", DEFAULT_PROJECT, help=PROJECT_HELP),
                  json_output: bool = OPT_JSON) -> None:
    """Send a real test message and print what the receiver answered."""
    from ledger.cli.output import fail
    from ledger.core.alerts import manage

    with handle_errors():
        result = _run(project, lambda conn, pid: manage.test_channel(conn, pid, channel))
    if json_output:
        print_json(result)
    elif result["ok"]:
        code = f"HTTP {result['status_code']}" if result["status_code"] else "accepted"
        success(f"{result['channel']}: {code} in {result['duration_ms']:.0f} ms"
                + (f": {result['answer']}" if result["answer"] else ""))
    if not result["ok"]:
        raise fail(f"{result['channel']}: {result['error']}", 69)


# -- history and snooze -------------------------------------------------------------------------


@app.command("history")
def history_command(
    rule: str | None = flags.option("--rule", None, help="Only this rule (name or id)."),
    since: str | None = flags.option("--since", None, help="ISO-8601 time or 2h, 1d..."),
    limit: int = flags.option("--limit", 50, help="At most this many (1-500)."),
    project: str = flags.option("--project", DEFAULT_PROJECT, help=PROJECT_HELP),
    json_output: bool = OPT_JSON,
) -> None:
    """Alerts that fired, newest first, and how each delivery went."""
    from ledger.core.alerts import manage

    with handle_errors():
        found = _run(project, lambda conn, pid: manage.list_history(
            conn, [pid], rule=rule, since=since, limit=limit))
    if json_output:
        print_json(found)
        return
    rows = []
    for a in found:
        sent = ", ".join(f"{d['channel']}: {d['status']} ({len(d['attempts'])} tries)"
                         for d in a["deliveries"])
        rows.append((a["created_at"][:19], a["rule"], a["status"], a["title"], sent))
    table("Alert history", ("fired", "rule", "status", "alert", "deliveries"), rows)


@app.command("snooze")
def snooze_command(target: str = typer.Argument(..., help="Rule name/id, or error group id."),
                   duration: str = typer.Argument(..., help="How long: 30m, 2h, 1d."),
                   project: str = flags.option(
                       "--project", DEFAULT_PROJECT, help=PROJECT_HELP),
                   json_output: bool = OPT_JSON) -> None:
    """Snooze a rule or a group: its alerts are recorded, not sent, until then."""
    from ledger.core.alerts import rules

    with handle_errors():
        done = _run(project, lambda conn, pid: rules.snooze(conn, pid, target, duration))
        assert done.until is not None
        if json_output:
            print_json(dataclasses.asdict(done))
            return
        success(f"snoozed {done.target} {done.name!r} until {done.until:%Y-%m-%d %H:%M} UTC")


@app.command("unsnooze")
def unsnooze_command(target: str = typer.Argument(..., help="Rule name/id, or error group id."),
                     project: str = flags.option(
                         "--project", DEFAULT_PROJECT, help=PROJECT_HELP),
                     json_output: bool = OPT_JSON) -> None:
    """End a snooze: alerts are sent again."""
    from ledger.core.alerts import rules

    with handle_errors():
        done = _run(project, lambda conn, pid: rules.snooze(conn, pid, target, None))
        if json_output:
            print_json(dataclasses.asdict(done))
            return
        success(f"unsnoozed {done.target} {done.name!r}")
