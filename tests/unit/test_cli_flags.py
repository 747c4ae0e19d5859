"""One flag vocabulary: every option of every command is spelled as ``ledger/cli/flags.py`` says.

Walks the whole Typer app, so a new command or option that is not in the table (or gives a
long name another short letter, or prints without ``--json``) fails here.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from ledger.cli.flags import FLAGS, names
from ledger.cli.main import app
from ledger.cli.manpage import _is_option, _walk

#: Commands that run daemons or a terminal UI and print no result to parse.
NO_JSON = {("up",), ("serve",)}


def _commands() -> list[tuple[tuple[str, ...], Any]]:
    return [(tuple(path), command) for path, command in _walk(typer.main.get_command(app), [])]


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if _is_option(p) and p.name != "help"]


def test_every_option_is_in_the_table_with_its_short_letter_and_aliases() -> None:
    problems = []
    for path, command in _commands():
        for option in _options(command):
            longs = [o for o in option.opts if o.startswith("--")]
            main = next((o for o in longs if o in FLAGS), None)
            if main is None:
                problems.append(f"ledger {' '.join(path)}: {option.opts} is not in FLAGS")
                continue
            expected = set(names(main))
            if set(option.opts) != expected:
                problems.append(f"ledger {' '.join(path)}: {main} is spelled {option.opts},"
                                f" the table says {sorted(expected)}")
    assert problems == []


def test_a_short_letter_means_one_flag_everywhere() -> None:
    owners: dict[str, set[str]] = {}
    for _, command in _commands():
        for option in _options(command):
            long = next(o for o in option.opts if o.startswith("--"))
            for short in (o for o in option.opts if not o.startswith("--")):
                owners.setdefault(short, set()).add(long)
    assert {s: longs for s, longs in owners.items() if len(longs) > 1} == {}
    # The letters the issue found clashing now mean one thing each.
    assert owners["-s"] == {"--since"} and owners["-e"] == {"--environment"}
    assert owners["-n"] == {"--limit"}


def test_metavars_are_readable_words() -> None:
    unreadable = []
    for path, command in _commands():
        for option in _options(command):
            metavar = option.metavar or ""
            if "<" in metavar or "[" in metavar or metavar != FLAGS[
                    next(o for o in option.opts if o in FLAGS)].metavar:
                unreadable.append((path, option.opts, metavar))
    assert unreadable == []
    help_text = CliRunner().invoke(app, ["logs", "--help"], env={"COLUMNS": "160"}).stdout
    # Typer's own --help line keeps its "<bool>"; every option of Ledger's reads as a word.
    # (Typer types every positional argument, LOG_ID here, as "<str>": options only.)
    help_text = help_text[help_text.index("Options"):]
    help_text = "\n".join(line for line in help_text.splitlines() if "--help" not in line)
    assert "<bool>" not in help_text
    assert "<list[str]>" not in help_text and "<str>" not in help_text
    assert "WHEN" in help_text and "LEVEL" in help_text


def test_every_command_that_prints_takes_json() -> None:
    missing = [" ".join(path) for path, command in _commands()
               if path not in NO_JSON and not any("--json" in o.opts for o in _options(command))]
    assert missing == []


def test_every_gateway_command_takes_url_and_api_key() -> None:
    through_gateway = [(path, c) for path, c in _commands()
                       if path[0] in ("logs", "tail", "top", "errors")]
    assert len(through_gateway) >= 10
    missing = [" ".join(path) for path, command in through_gateway
               if not {"--url", "--api-key"} <= {o for p in _options(command) for o in p.opts}]
    assert missing == []
