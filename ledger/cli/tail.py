"""`ledger tail [--errors]`: follow a project's errors or logs live, in a TUI or as JSON lines."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import select
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ledger.cli import flags
from ledger.cli.context import load_settings
from ledger.cli.output import err_console, fail, handle_errors, print_json_line
from ledger.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from ledger.cli.credentials import Credential
    from ledger.config import Settings
    from ledger.sse_client import EventSource

_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
PIPE_CHECK_SECONDS = 0.25


def since_cursor(since: str, now: datetime | None = None) -> str:
    """A ``Last-Event-ID`` that replays what the server holds from ``since`` on.

    Stream ids are ``<milliseconds>-<seq>``, so a time in milliseconds is a position.

    Raises:
        InvalidInputError: ``since`` is neither a duration (10m, 2h, 1d, 30s) nor ISO-8601.
    """
    now = now or datetime.now(UTC)
    match = _DURATION.match(since.strip().lower())
    if match:
        start = now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    else:
        try:
            start = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(
                f"--since {since!r}: use a duration (30s, 10m, 2h, 1d) or an ISO time"
                " (2024-05-01T12:00:00Z)") from None
        if start.tzinfo is None:
            start = start.astimezone()
    return f"{max(0, int(start.timestamp() * 1000))}-0"


def tail(
    errors: bool = flags.option(
        "--errors", False, help="Only errors: exceptions and error/critical logs."),
    project: str | None = flags.option(
        "--project", None, help="Project slug or id (default: the key's project)."),
    level: list[str] = flags.option("--level", []),
    since: str | None = flags.option(
        "--since", None,
        help="First show what the server still holds from this far back: 30s, 10m, 2h, 1d or an"
             " ISO time."),
    url: str | None = flags.option("--url", None),
    api_key: str | None = flags.option("--api-key", None),
    json_lines: bool = flags.option(
        "--json", False,
        help="One JSON object per line instead of the terminal UI (the default when stdout is not"
             " a terminal)."),
) -> None:
    """Follow a project's errors (--errors) or all its logs live, as they are ingested.

    In a terminal: a live table; / filters, p pauses, j/k move, e jumps to the next error,
    G follows the newest, f shows the detail pane full-screen (Tab, arrows scroll it), t
    groups the messages by pattern, q quits.

    Piped (or with --json): one JSON object per line on stdout; notices go to stderr.

    After a network blip it reconnects by itself, without losing events.
    """
    with handle_errors():
        settings = load_settings(url=url, api_key=api_key)
        credential = _credential(settings, api_key)
        source = _source(settings, credential, errors, project, ",".join(level), since)
        if json_lines or not sys.stdout.isatty():
            asyncio.run(_print_lines(source))
            return
        _run_tui(source, settings, errors, project)


def _credential(settings: Settings, api_key: str | None) -> Credential:
    from ledger.cli import credentials

    if not settings.url:
        raise ConfigError("no gateway URL: pass --url, set LEDGER_URL, or start the stack with"
                          " `ledger up` (its state is found in this folder or above)")
    found = credentials.pick(settings, api_key_flag=api_key)
    if found is None:
        raise ConfigError("no credential: run `ledger login`, pass --api-key, or set"
                          " LEDGER_API_KEY (or start the stack with `ledger up`)")
    return credentials.refresh(found)


def _source(settings: Settings, credential: Credential, errors: bool, project: str | None,
            level: str, since: str | None) -> EventSource:
    from ledger.sse_client import EventSource

    path = "/api/v1/notifications/stream" if errors else "/api/v1/logs/tail"
    params = {k: v for k, v in (("project_id", project), ("level", level)) if v}
    return EventSource(f"{str(settings.url).rstrip('/')}{path}", params=params,
                       headers=credential.headers,
                       last_event_id=since_cursor(since) if since else None,
                       fresh_headers=None if credential.is_key else _fresh(credential))


def _fresh(credential: Credential) -> Callable[[], Awaitable[dict[str, str]]]:
    """Headers for each (re)connection: a login's access token lasts 15 minutes."""
    from ledger.cli import credentials
    from ledger.errors import UnavailableError

    current = credential

    async def headers() -> dict[str, str]:
        nonlocal current
        # The gateway away: this attempt fails and is retried like any other.
        with contextlib.suppress(UnavailableError):
            current = await asyncio.to_thread(credentials.refresh, current)
        return current.headers

    return headers


# -- JSON lines -------------------------------------------------------------------------------


async def _print_lines(source: EventSource) -> None:
    reader = asyncio.create_task(_copy_events(source), name="tail-events")
    waiters: set[asyncio.Task[Any]] = {reader}
    if _stdout_is_pipe():
        waiters.add(asyncio.create_task(_reader_gone(), name="tail-pipe-watch"))
    try:
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiters:
            task.cancel()
        for task in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if reader in done:
        reader.result()  # raises the LedgerError that ended the stream


async def _copy_events(source: EventSource) -> None:
    from ledger.sse_client import Connection

    lost = False
    try:
        async for item in source.stream():
            if isinstance(item, Connection):
                if item.state == "waiting":
                    lost = True
                    wait = max(0.0, (item.retry_at or 0.0) - time.monotonic())
                    err_console.print(f"[yellow]{source.url}: {item.error}; retrying in"
                                      f" {wait:.0f}s[/yellow]", highlight=False, soft_wrap=True)
                elif item.state == "connected" and lost:
                    lost = False
                    err_console.print("[green]reconnected; catching up[/green]")
            elif item.event in ("error_notification", "log"):
                data = item.json()
                print_json_line({"event_id": item.id, **data} if isinstance(data, dict)
                                else data)
            elif item.event == "skipped":
                err_console.print(f"[yellow]warning:[/yellow] {item.json().get('message')}")
    except BrokenPipeError:
        _quiet_stdout()


def _stdout_is_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode)
    except (OSError, ValueError):
        return False


async def _reader_gone() -> None:
    """Return when the reading end of stdout closed (``| head -1`` got its line)."""
    poller = select.poll()
    poller.register(sys.stdout.fileno(), 0)  # POLLERR/POLLHUP are reported regardless
    # No event tells a writer that its reader left, short of writing: poll.
    while not poller.poll(0):  # noqa: ASYNC110
        await asyncio.sleep(PIPE_CHECK_SECONDS)
    _quiet_stdout()


def _quiet_stdout() -> None:
    # The reader left: point stdout at /dev/null so that the final flush cannot fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


# -- the terminal UI --------------------------------------------------------------------------


def _run_tui(source: EventSource, settings: Settings, errors: bool,
             project: str | None) -> None:
    from ledger.tui.tail_app import TailApp

    _log_to_file(settings)
    names, scope = _project_names(settings, project, source.headers)
    app = TailApp(source, errors_only=errors, scope=scope, project_names=names)
    app.run()
    if app.fatal is not None:
        raise fail(app.fatal.message, app.fatal.exit_code)


def _log_to_file(settings: Settings) -> None:
    """The TUI owns the terminal: Ledger's own logs go to a file (or nowhere)."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    target: logging.Handler = logging.NullHandler()
    if settings.data_dir.is_dir():
        target = logging.FileHandler(settings.data_dir / "tail.log")
        target.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(target)


def _project_names(settings: Settings, project: str | None,
                   headers: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """The key's project slug for the table and the status line (best effort)."""
    import httpx

    try:
        answer = httpx.get(f"{str(settings.url).rstrip('/')}/api/v1/settings", timeout=3.0,
                           headers=headers or {"X-API-Key": str(settings.api_key)})
        body = answer.json() if answer.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        body = {}
    if isinstance(body, dict) and body.get("project_id"):
        slug = str(body.get("project_slug") or body["project_id"])
        return {str(body["project_id"]): slug}, slug
    return {}, project or ""
