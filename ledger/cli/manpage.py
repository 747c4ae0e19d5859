"""Generate the man pages in ``man/`` from the CLI itself: ``make man``.

``ledger.1`` lists every command, the global options and the ENVIRONMENT (from
``ledger.config.VARIABLES``); ``ledger-<name>.1`` is one page per command group or top-level
command (``man ledger-keys``), with its arguments and options. ``python -m ledger.cli.manpage``
prints ``ledger.1``; ``--write DIR`` writes every page; ``--readme README.md`` refreshes the
README's configuration reference, the same table in Markdown. Tests regenerate all of them and
fail when a committed one is stale, and render each page with ``man --warnings``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from ledger import __version__
from ledger.cli.main import app
from ledger.config import VARIABLES

EXIT_STATUS = (
    "0 on success; 1 an error (ledger status: something is unhealthy);"
    " 64 bad usage or input; 65 database schema problem; 66 not found;"
    " 69 a service is unavailable; 73 already exists; 75 try again later;"
    " 77 not allowed; 78 configuration error."
)


def _esc(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    # Non-ASCII as roff's own escapes: the page then renders the same without preconv.
    text = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)
    lines = []
    for line in text.splitlines():
        # A roff line starting with . or ' is a request: guard it. A blank line in running
        # text is a paragraph break in the help: say so with .PP (groff warns about blanks).
        if not line.strip():
            lines.append(".PP")
            continue
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


def _shown(param: Any) -> bool:
    return param.name != "help" and not getattr(param, "hidden", False)


def _usage(command: Any) -> str:
    return " ".join(
        f"[{p.opts[0]}]" if _is_option(p) else (p.name or "").upper()
        for p in command.params if _shown(p)
    )


def _params(command: Any, indent: bool) -> list[str]:
    """One tagged paragraph per argument and option that has help."""
    out: list[str] = []
    for param in command.params:
        text = getattr(param, "help", None)
        if not _shown(param) or not text:
            continue
        name = ", ".join(param.opts) if _is_option(param) else (param.name or "").upper()
        out += [".TP", f"\\fB{_esc(name)}\\fR", _esc(text)]
    return [".RS", *out, ".RE"] if indent and out else out


def _commands(root: Any, prefix: list[str]) -> list[str]:
    out: list[str] = []
    for path, command in _walk(root, []):
        words = " ".join([*prefix, *path])
        out += [".TP", f"\\fB{_esc(words)}\\fR {_esc(_usage(command))}",
                _esc((command.help or "").strip()), *_params(command, indent=True)]
    return out


def _header(name: str, summary: str) -> list[str]:
    # .nh: no hyphenation, so LEDGER_* names and --options are never split over two lines.
    return [f'.TH {name.upper()} 1 "" "ledger {__version__}" "Ledger manual"', ".nh",
            ".SH NAME", f"{_esc(name)} \\- {_esc(summary)}"]


def _summary(command: Any) -> str:
    first = (command.help or "").strip().split("\n", 1)[0].rstrip(".")
    return first[0].lower() + first[1:] if first[:2] != first[:2].upper() else first


def _subpage(name: str, command: Any, others: list[str]) -> str:
    page = f"ledger-{name}"
    is_group = getattr(command, "commands", None) is not None
    out = _header(page, _summary(command))
    out += [".SH SYNOPSIS", f"\\fBledger {_esc(name)}\\fR "
            + ("\\fICOMMAND\\fR [\\fIARGS\\fR]..." if is_group else _esc(_usage(command)))]
    out += [".SH DESCRIPTION", _esc((command.help or "").strip())]
    if is_group:
        out += [".SH COMMANDS", *_commands(command, ["ledger", name])]
    else:
        params = _params(command, indent=False)
        if params:
            out += [".SH OPTIONS", *params]
    out += [".SH ENVIRONMENT",
            "Every command reads the LEDGER_* variables listed in \\fBledger\\fR(1).",
            ".SH EXIT STATUS", EXIT_STATUS,
            ".SH SEE ALSO", _see_also(["ledger", *(o for o in others if o != page)])]
    return "\n".join(out) + "\n"


def _see_also(pages: list[str]) -> str:
    return ",\n".join(f"\\fB{_esc(p)}\\fR(1)" for p in pages)


def _names(root: Any) -> list[str]:
    return sorted(root.commands)


def render() -> str:
    """``ledger.1``: every command, the global options, every variable."""
    root = typer.main.get_command(app)
    out = [
        *_header("ledger", "self-hosted logging and error tracking"),
        ".SH SYNOPSIS",
        ".B ledger",
        "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        _esc("One command starts each daemon (ledger serve NAME), runs the whole stack locally "
             "(ledger up) and manages projects, API keys, the queue and the databases. Each "
             "command group has its own page: man ledger-keys, man ledger-up, and so on."),
        ".SH OPTIONS",
        *_params(root, indent=False),
        ".SH COMMANDS",
        *_commands(root, ["ledger"]),
        ".SH ENVIRONMENT",
    ]
    for var in VARIABLES:
        default = "" if var.default in (None, ()) else f" Default: {var.default}."
        out += [".TP", f"\\fB{var.env}\\fR", _esc(var.doc + default)]
    out += [
        ".SH EXIT STATUS", EXIT_STATUS,
        ".SH FILES",
        "\\fI.ledger/\\fR (LEDGER_DATA_DIR): embedded databases, \\fIstate.json\\fR with the local"
        " stack's URLs and default API key, and daemon logs under \\fIlogs/\\fR.",
        ".SH SEE ALSO", _see_also([f"ledger-{n}" for n in _names(root)]),
    ]
    return "\n".join(out) + "\n"


def pages() -> dict[str, str]:
    """Every man page by file name: ``ledger.1`` and one ``ledger-<name>.1`` per command."""
    root: Any = typer.main.get_command(app)
    names = [f"ledger-{n}" for n in _names(root)]
    result = {"ledger.1": render()}
    for name in _names(root):
        result[f"ledger-{name}.1"] = _subpage(name, root.commands[name], names)
    return result


def write(folder: Path) -> list[Path]:
    """Write every page into ``folder`` and remove pages of commands that no longer exist."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = pages()
    for stale in folder.glob("ledger*.1"):
        if stale.name not in wanted:
            stale.unlink()
    written = []
    for name, text in wanted.items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written


TABLE_START = "<!-- configuration table: generated by `make man`, do not edit -->"
TABLE_END = "<!-- end of configuration table -->"


def config_table() -> str:
    """Every LEDGER_* variable as a Markdown table (the README's configuration reference)."""
    rows = ["| variable | default | what it sets |", "|---|---|---|"]
    for var in VARIABLES:
        default = "" if var.default in (None, ()) else f"`{var.default}`"
        doc = var.doc.replace("|", "\\|")
        rows.append(f"| `{var.env}` | {default} | {doc} |")
    return "\n".join(rows)


def with_config_table(readme: str) -> str:
    """``readme`` with the text between the table markers replaced by ``config_table()``."""
    head, start, rest = readme.partition(TABLE_START)
    _, end, tail = rest.partition(TABLE_END)
    if not (start and end):
        raise ValueError(f"the README has no {TABLE_START!r} ... {TABLE_END!r} markers")
    return f"{head}{TABLE_START}\n{config_table()}\n{TABLE_END}{tail}"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"] and len(sys.argv) == 3:
        for path in write(Path(sys.argv[2])):
            sys.stdout.write(f"{path}\n")
    elif sys.argv[1:2] == ["--readme"] and len(sys.argv) == 3:
        readme = Path(sys.argv[2])
        readme.write_text(with_config_table(readme.read_text()))
    elif len(sys.argv) == 1:
        sys.stdout.write(render())
    else:
        sys.exit("usage: python -m ledger.cli.manpage [--write DIR | --readme README.md]")
