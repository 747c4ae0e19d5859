"""Generate ``man/ledger.1`` from the CLI itself: ``python -m ledger.cli.manpage > man/ledger.1``.

Commands, their help and options come from the Typer app; the ENVIRONMENT section from
``ledger.config.VARIABLES``. A test regenerates it and fails when the committed page is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import typer

from ledger import __version__
from ledger.cli.main import app
from ledger.config import VARIABLES


def _esc(text: str) -> str:
    lines = []
    for line in text.replace("\\", "\\\\").splitlines():
        # A roff line starting with . or ' is a request: guard it.
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    # Typer vendors its own click: recognise groups and options by shape, not by class.
    commands = getattr(command, "commands", None)
    if commands is not None:
        for name in sorted(commands):
            yield from _walk(commands[name], [*path, name])
    else:
        yield path, command


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def render() -> str:
    root = typer.main.get_command(app)
    out = [
        f'.TH LEDGER 1 "" "ledger {__version__}" "Ledger manual"',
        ".SH NAME",
        "ledger \\- self-hosted logging and error tracking",
        ".SH SYNOPSIS",
        ".B ledger",
        "[\\fB\\-\\-verbose\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        _esc("One command starts each daemon (ledger serve NAME), runs the whole stack locally "
             "(ledger up) and manages projects, API keys, the queue and the databases."),
        ".SH COMMANDS",
    ]
    for path, command in _walk(root, []):
        params = " ".join(
            f"[{p.opts[0]}]" if _is_option(p) else (p.name or "").upper()
            for p in command.params if p.name != "help"
        )
        out += [".TP", f"\\fBledger {' '.join(path)}\\fR {_esc(params)}",
                _esc((command.help or "").strip())]
        for param in command.params:
            if _is_option(param) and param.help and param.name != "help":
                out += [".RS", ".TP", f"\\fB{_esc(', '.join(param.opts))}\\fR", _esc(param.help),
                        ".RE"]
    out.append(".SH ENVIRONMENT")
    for var in VARIABLES:
        default = "" if var.default in (None, ()) else f" Default: {var.default}."
        out += [".TP", f"\\fB{var.env}\\fR", _esc(var.doc + default)]
    out += [
        ".SH EXIT STATUS",
        "0 on success; 1 an error (ledger status: something is unhealthy);"
        " 64 bad usage or input; 65 database schema problem; 66 not found;"
        " 69 a service is unavailable; 73 already exists; 75 try again later;"
        " 77 not allowed; 78 configuration error.",
        ".SH FILES",
        "\\fI.ledger/\\fR (LEDGER_DATA_DIR): embedded databases, \\fIstate.json\\fR with the local"
        " stack's URLs and default API key, and daemon logs under \\fIlogs/\\fR.",
    ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
