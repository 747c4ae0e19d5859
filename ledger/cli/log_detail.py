"""`ledger logs <id>`: one stored log in full, the way `ledger errors show` shows a group.

The table of `ledger logs` shows one line per log; this is the rest of it: every field that was
sent or added, the attributes as indented JSON and the whole stack trace. What the application
sent is printed as text, never read as markup.
"""

from __future__ import annotations

from typing import Any

import orjson
from rich.markup import escape

from ledger.cli.ids import checked_id
from ledger.cli.output import console

#: Fields in the order a reader wants them; anything else the server adds comes after.
_FACTS = ("id", "project_id", "timestamp", "ingested_at", "level", "log_type", "importance",
          "environment", "release", "platform", "platform_version", "sdk_version", "trace_id",
          "span_id", "error_type", "error_message", "error_fingerprint",
          "fingerprint_version", "fingerprint")
_TIMES = ("timestamp", "ingested_at")
_BLOCKS = ("message", "attributes", "stack_trace")


def log_path(log_id: str) -> str:
    """The REST path of a log named by its id or a unique prefix of it."""
    return f"/api/v1/logs/{checked_id('log', log_id)}"


def print_log(log: dict[str, Any]) -> None:
    from ledger.cli.logs import level_text, summary, when

    console.print(f"[bold]{escape(summary(log, width=200))}[/]", highlight=False)
    extra = [k for k in log if k not in _FACTS and k not in _BLOCKS]
    for name in (*_FACTS, *extra):
        value = log.get(name)
        if value is None or value == []:
            continue
        if name in _TIMES:
            text = when(str(value))
        elif name == "level":
            text = level_text(str(value))
        elif isinstance(value, list | dict):
            text = escape(orjson.dumps(value).decode())
        else:
            text = escape(str(value))
        console.print(f"[dim]{name.replace('_', ' '):>19}[/]  {text}", highlight=False)
    if log.get("message"):
        console.print("\n[bold]message[/]", highlight=False)
        console.print(str(log["message"]), highlight=False, markup=False)
    if log.get("attributes"):
        console.print("\n[bold]attributes[/]", highlight=False)
        console.print(orjson.dumps(log["attributes"], option=orjson.OPT_INDENT_2
                                   | orjson.OPT_SORT_KEYS).decode(),
                      highlight=False, markup=False)
    if log.get("stack_trace"):
        console.print("\n[bold]stack trace[/]", highlight=False)
        console.print(str(log["stack_trace"]), highlight=False, markup=False)
