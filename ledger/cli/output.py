"""Rendering for commands: rich tables for people, JSON for scripts, one-line errors.

Every command body runs inside ``handle_errors()``: a ``LedgerError`` becomes one line on stderr
("error: ...") and the error's exit code, never a traceback.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from ledger.errors import LedgerError

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """One JSON document on stdout (sorted keys, UTF-8, ISO timestamps)."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
                                  default=str).decode() + "\n")
    sys.stdout.flush()


def print_json_line(data: Any) -> None:
    """One JSON object per line, for streams piped to other tools."""
    sys.stdout.write(orjson.dumps(data, default=str).decode() + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    out = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    console.print(out)


def success(message: str) -> None:
    console.print(f"[green]✓[/green] {message}")


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line; return the Exit to raise (``raise fail(...)``)."""
    # soft_wrap: one line however narrow the terminal (scripts and tests read it whole).
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    try:
        yield
    except LedgerError as exc:
        raise fail(exc.message, exc.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
