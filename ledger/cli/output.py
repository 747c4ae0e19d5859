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
from rich.markup import escape
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


def terminal_width() -> int:
    """Columns of the terminal (``COLUMNS`` wins, as for every rich console)."""
    return console.width


def one_line_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                   flexible: str) -> None:
    """A table of one line per row: every cell stays whole except ``flexible``'s, which gets
    the width left and ends in "…" when cut. Callers pick the columns that fit the width.
    Cells are plain values, or ``rich.text.Text`` when styled.

    Drawn by hand rather than with ``rich.table``: rich shrinks every column of a table
    that is too wide, ids included, and those must stay whole to be copied.
    """
    from rich.text import Text

    gap = "  "
    # Plain values are shown as they are (a log message is not markup); styled cells come as Text.
    cells = [[v.copy() if isinstance(v, Text) else Text("" if v is None else str(v))
              for v in row] for row in rows]
    widths = [max([len(c), *(r[i].cell_len for r in cells)]) for i, c in enumerate(columns)]
    fixed = sum(w for c, w in zip(columns, widths, strict=True) if c != flexible)
    spare = console.width - fixed - len(gap) * (len(columns) - 1) - 1
    widths = [max(len(c), min(w, spare)) if c == flexible else w
              for c, w in zip(columns, widths, strict=True)]
    header = Text(gap.join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
                  style="bold")
    console.print(header, soft_wrap=True, highlight=False)
    for row in cells:
        line = Text()
        for i, (cell, width) in enumerate(zip(row, widths, strict=True)):
            cell.truncate(width, overflow="ellipsis", pad=i < len(row) - 1)
            line.append_text(cell)
            if i < len(row) - 1:
                line.append(gap)
        console.print(line, soft_wrap=True, highlight=False)


# Messages carry names and titles that users chose: escaped, a "[b]" in a title stays text.


def success(message: str) -> None:
    console.print(f"[green]✓[/green] {escape(message)}")


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line; return the Exit to raise (``raise fail(...)``)."""
    # soft_wrap: one line however narrow the terminal (scripts and tests read it whole).
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    try:
        yield
    except LedgerError as exc:
        raise fail(exc.message, exc.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
