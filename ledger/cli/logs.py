"""`ledger logs`: search a project's logs through the gateway, or follow new ones.

Same filters as ``GET /api/v1/logs``; uses LEDGER_URL and LEDGER_API_KEY (a key with the read
scope), or what `ledger up` saved.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer

from ledger.cli import flags
from ledger.cli.context import load_settings
from ledger.cli.output import (
    console,
    handle_errors,
    one_line_table,
    print_json,
    print_json_line,
    table,
    terminal_width,
)
from ledger.errors import InvalidInputError

if TYPE_CHECKING:
    from ledger.cli.api import GatewayClient

_SINCE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
LEVEL_STYLES = {"debug": "dim", "info": "green", "warning": "yellow", "error": "red",
                "critical": "bold white on red"}
#: A poll reads at most this many pages; more new logs than that per poll are skipped (and said).
MAX_FOLLOW_PAGES = 20
FOLLOW_PAGE = 1000
#: ``--patterns`` mines at most this many of the newest matching logs.
PATTERN_SCAN_LOGS = 10_000


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``15m`` -> the time 15 minutes ago (s, m, h, d and w units)."""
    match = _SINCE.match(text)
    if not match:
        raise InvalidInputError(f"--since must look like 30s, 15m, 2h, 7d or 1w; got {text!r}")
    delta = timedelta(**{_UNITS[match[2]]: int(match[1])})
    return (now or datetime.now(UTC)) - delta


def filter_params(*, project: str | None, period: str | None, since: str | None,
                  start: str | None, end: str | None, level: list[str], log_type: list[str],
                  environment: list[str], release: list[str], fingerprint: str | None,
                  search: str | None) -> dict[str, Any]:
    """The query parameters of ``GET /logs`` for these options."""
    if since and (period or start):
        raise InvalidInputError("give --since, --period or --from, not several")
    if since:
        start = parse_since(since).isoformat()
    return {
        "project_id": project, "period": period, "periodFrom": start, "periodTo": end,
        "level": ",".join(level), "log_type": ",".join(log_type),
        "environment": ",".join(environment), "release": ",".join(release),
        "error_fingerprint": fingerprint, "search": search,
    }


def when(iso: str) -> str:
    """A stored timestamp for a terminal: local time with milliseconds."""
    try:
        value = datetime.fromisoformat(iso).astimezone()
    except (TypeError, ValueError):
        return str(iso)
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"


def summary(row: dict[str, Any], width: int = 120) -> str:
    """The one line that says what a log is about."""
    text = row.get("message") or ""
    if row.get("error_type"):
        text = f"{row['error_type']}: {row.get('error_message') or ''}" + (
            f" — {text}" if text else "")
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return first if len(first) <= width else first[: width - 1] + "…"


def level_text(level: str) -> str:
    style = LEVEL_STYLES.get(level, "")
    return f"[{style}]{level}[/]" if style else level


def print_line(row: dict[str, Any]) -> None:
    """One log as one line (follow mode); what the application sent is never read as markup."""
    from rich.markup import escape

    where = escape(" ".join(str(v) for v in (row.get("environment"), row.get("release")) if v))
    console.print(f"{when(row['timestamp'])} {level_text(row['level']):<8} "
                  f"[dim]{escape(str(row['log_type']))}[/] {escape(summary(row))}"
                  + (f" [dim]({where})[/]" if where else ""), highlight=False, markup=True,
                  soft_wrap=True)


#: Below these terminal widths a column of ``ledger logs`` is left out (the id never is).
_WIDE_FROM = {"type": 100, "environment": 130, "release": 130}
_FULL_TIME_FROM = 120


def page_columns(width: int) -> list[str]:
    """The columns of a page of logs that fit ``width`` terminal columns, in order."""
    wanted = ["time", "level", "type", "message", "environment", "release", "id"]
    return [c for c in wanted if width >= _WIDE_FROM.get(c, 0)]


def short_when(iso: str, width: int) -> str:
    """``when`` at wide terminals; month, day and seconds at narrow ones."""
    full = when(iso)
    return full if width >= _FULL_TIME_FROM else full[5:19]


def print_page(page: dict[str, Any]) -> None:
    """A page as a table, oldest at the top (like a terminal log), and how to see more.

    One line per log at any width: the columns are picked by the terminal's width, the
    message is cut with "…", and ids are shown as their shortest unique prefix, never cut.
    """
    from rich.text import Text

    from ledger.cli.ids import short_ids

    width = terminal_width()
    rows = list(reversed(page["logs"]))
    short = short_ids(r["id"] for r in rows)
    columns = page_columns(width)
    cells: dict[str, Callable[[dict[str, Any]], Any]] = {
        "time": lambda r: short_when(r["timestamp"], width),
        "level": lambda r: Text.from_markup(level_text(r["level"])),
        "type": lambda r: r["log_type"],
        "message": lambda r: summary(r, 200), "environment": lambda r: r.get("environment"),
        "release": lambda r: r.get("release"), "id": lambda r: short[r["id"]],
    }
    one_line_table(columns, [[cells[c](r) for c in columns] for r in rows], flexible="message")
    total = f"{page['total']}" + ("" if page["total_exact"] else "+")
    console.print(f"[dim]{len(rows)} of {total} matching logs[/]", highlight=False)
    if page.get("next_cursor"):
        console.print(f"[dim]older: --cursor {page['next_cursor']}[/]", highlight=False,
                      soft_wrap=True)


def new_logs(client: GatewayClient, params: dict[str, Any], since: str,
             seen: set[str]) -> list[dict[str, Any]]:
    """Logs at or after ``since`` not in ``seen``, oldest first (walking pages by cursor)."""
    found: list[dict[str, Any]] = []
    query = params | {"period": None, "periodFrom": since, "limit": FOLLOW_PAGE}
    for _ in range(MAX_FOLLOW_PAGES):
        page = client.get("/api/v1/logs", **query)
        fresh = [r for r in page["logs"] if r["id"] not in seen]
        found.extend(fresh)
        if not page["has_more"] or len(fresh) < len(page["logs"]):
            break
        query = query | {"cursor": page["next_cursor"]}
    found.reverse()
    return found


def newest_logs(client: GatewayClient, params: dict[str, Any],
                most: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``most`` of the newest matching logs (by cursor), and whether that was all."""
    found: list[dict[str, Any]] = []
    query = params | {"limit": FOLLOW_PAGE}
    while len(found) < most:
        page = client.get("/api/v1/logs", **query)
        found.extend(page["logs"])
        if not page["has_more"]:
            return found[:most], len(found) <= most
        query = query | {"cursor": page["next_cursor"]}
    return found[:most], False


def print_patterns(patterns: list[dict[str, Any]], examined: int, complete: bool,
                   shown: int) -> None:
    """Patterns as a table, most frequent first, with what share of the logs each is."""
    table(None, ["count", "share", "levels", "last seen", "pattern"],
          [[p["count"], f"{100 * p['count'] / max(examined, 1):.1f}%",
            ", ".join(f"{level} {n}" for level, n in sorted(p["levels"].items())),
            when(p["last_seen"]) if p["last_seen"] else "", p["template"]]
           for p in patterns[:shown]])
    scope = f"the newest {examined} matching logs" if not complete else f"{examined} logs"
    more = f"; {len(patterns) - shown} more with --limit" if len(patterns) > shown else ""
    console.print(f"[dim]{len(patterns)} patterns in {scope}{more}[/]", highlight=False)


def follow(client: GatewayClient, params: dict[str, Any], first: dict[str, Any],
           interval: float, json_output: bool) -> None:
    """Print ``first`` then poll for newer logs every ``interval`` seconds until Ctrl-C."""
    emit = print_json_line if json_output else print_line
    rows = list(reversed(first["logs"]))
    for row in rows:
        emit(row)
    # The newest timestamp printed and the ids printed at it: the next poll starts there, so a
    # log that shares that timestamp is neither lost nor printed twice.
    start = datetime.now(UTC) - timedelta(seconds=1)
    last = rows[-1]["timestamp"] if rows else start.isoformat()
    seen = {r["id"] for r in rows if r["timestamp"] == last}
    while True:
        time.sleep(interval)
        for row in new_logs(client, params, last, seen):
            emit(row)
            if row["timestamp"] != last:
                last, seen = row["timestamp"], set()
            seen.add(row["id"])


def logs_command(
    log_id: str | None = typer.Argument(
        None, metavar="LOG_ID",
        help="Show this one log in full (its id, or its first 6 or more characters)."),
    project: str | None = flags.option(
        "--project", None, help="Project id or slug (default: the API key's project)."),
    period: str | None = flags.option(
        "--period", None,
        help="today, last1h, last24h, last7days, last30days, currentWeek, currentMonth or"
             " currentYear (UTC)."),
    since: str | None = flags.option(
        "--since", None, help="Only logs newer than this: 30s, 15m, 2h, 7d."),
    start: str | None = flags.option("--from", None, help="Start, ISO-8601."),
    end: str | None = flags.option("--to", None, help="End, ISO-8601 (exclusive)."),
    level: list[str] = flags.option("--level", []),
    log_type: list[str] = flags.option("--type", []),
    environment: list[str] = flags.option(
        "--environment", [], help="Environment; repeat or comma-separate for several."),
    release: list[str] = flags.option(
        "--release", [], help="Release; repeat or comma-separate for several."),
    fingerprint: str | None = flags.option(
        "--fingerprint", None, help="Only events of this error fingerprint."),
    search: str | None = flags.option(
        "--search", None, help="Text in the message or error (case-insensitive)."),
    limit: int = flags.option("--limit", 50, min=1, max=1000, help="How many logs."),
    cursor: str | None = flags.option("--cursor", None, help="Continue after a previous page."),
    follow_logs: bool = flags.option(
        "--follow", False, help="Keep polling and print new logs until Ctrl-C."),
    interval: float = flags.option(
        "--interval", 2.0, min=0.2, help="Seconds between polls with --follow."),
    patterns: bool = flags.option(
        "--patterns", False,
        help="Group the matching logs (the"
             f" newest {PATTERN_SCAN_LOGS} at most) by message pattern,"
             " with counts; --limit is then how many patterns."),
    url: str | None = flags.option("--url", None),
    api_key: str | None = flags.option("--api-key", None),
    json_output: bool = flags.option(
        "--json", False, help="JSON (one object per line with --follow)."),
) -> None:
    """Search a project's logs, newest last; --follow keeps printing new ones; `ledger logs
    LOG_ID` shows one log in full.

    Reads through the gateway (LEDGER_URL) with --api-key, LEDGER_API_KEY, your `ledger login`
    (every project of the account) or the key `ledger up` saved, in that order.
    """
    from ledger.cli.api import GatewayClient

    with handle_errors():
        params = filter_params(project=project, period=period, since=since, start=start,
                               end=end, level=level, log_type=log_type,
                               environment=environment, release=release,
                               fingerprint=fingerprint, search=search)
        if log_id is not None:
            _show_one(log_id, url=url, api_key=api_key, json_output=json_output,
                      other_flags=any(params.values()) or patterns or follow_logs or bool(cursor))
            return
        if patterns and (follow_logs or cursor):
            raise InvalidInputError("--patterns reads the newest logs: leave out --follow and"
                                    " --cursor")
        with GatewayClient(load_settings(url=url), api_key=api_key) as client:
            if patterns:
                _show_patterns(client, params, limit, json_output)
                return
            page = client.get("/api/v1/logs", **params, limit=limit, cursor=cursor)
            if follow_logs:
                follow(client, params, page, interval, json_output)
            elif json_output:
                print_json(page)
            else:
                print_page(page)


def _show_one(log_id: str, *, url: str | None, api_key: str | None, json_output: bool,
              other_flags: bool) -> None:
    from ledger.cli.api import GatewayClient
    from ledger.cli.log_detail import log_path, print_log

    if other_flags:
        raise InvalidInputError("a LOG_ID shows that one log: leave out the filters, --follow,"
                                " --patterns and --cursor (or the LOG_ID, to search)")
    path = log_path(log_id)
    with GatewayClient(load_settings(url=url), api_key=api_key) as client:
        log = client.get(path)
    if json_output:
        print_json(log)
    else:
        print_log(log)


def _show_patterns(client: GatewayClient, params: dict[str, Any], shown: int,
                   json_output: bool) -> None:
    from ledger.core.patterns import mine

    rows, complete = newest_logs(client, params, PATTERN_SCAN_LOGS)
    found = [p.to_dict() for p in mine(rows)]
    if json_output:
        print_json({"patterns": found[:shown], "patterns_total": len(found),
                    "logs_examined": len(rows), "complete": complete})
    else:
        print_patterns(found, len(rows), complete, shown)
