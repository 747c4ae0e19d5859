"""Documentation checked against the code: the man page, the README's promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger.cli.manpage import pages, render
from ledger.config import VARIABLES

ROOT = Path(__file__).resolve().parents[2]


def test_man_page_is_generated_from_the_current_cli() -> None:
    committed = (ROOT / "man" / "ledger.1").read_text()
    assert committed == render(), "man/ledger.1 is stale: run make man"


def test_every_man_page_is_generated_from_the_current_cli() -> None:
    wanted = pages()
    committed = {p.name: p.read_text() for p in (ROOT / "man").glob("*.1")}
    assert sorted(committed) == sorted(wanted), "man/ has missing or extra pages: run make man"
    stale = [name for name, text in wanted.items() if committed[name] != text]
    assert not stale, f"stale man pages {stale}: run make man"


def test_every_variable_is_documented_in_the_man_page() -> None:
    page = (ROOT / "man" / "ledger.1").read_text()
    for var in VARIABLES:
        assert f"\\fB{var.env}\\fR" in page, var.env


def test_readme_keeps_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make up" in readme
    assert "make test" in readme


def test_readme_architecture_names_every_package() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1]
    for package in sorted(p.name for p in (ROOT / "ledger").iterdir()
                          if p.is_dir() and (p / "__init__.py").exists()):
        assert f"{package}/" in section, f"README architecture does not mention ledger/{package}/"


def test_readme_sdk_quick_starts_name_what_the_sdk_exports() -> None:
    import re

    import ledger.sdk

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Sending logs from your application", 1)[1].split("\n## ", 1)[0]
    imported = {name.strip() for line in re.findall(r"from ledger\.sdk import (.+)", section)
                for name in line.split(",")}
    assert imported >= {"Ledger", "LedgerHandler", "LedgerMiddleware", "LedgerWSGIMiddleware",
                        "capture_flask_exceptions"}
    assert imported <= set(ledger.sdk.__all__)
    assert "/v1/logs" in section


def test_readme_architecture_names_every_gateway_room_and_rpc_client() -> None:
    section = (ROOT / "README.md").read_text().split("## Architecture", 1)[1]
    gateway = ROOT / "ledger" / "daemons" / "gateway"
    for room in sorted(p for p in gateway.iterdir() if (p / "__init__.py").exists()):
        assert f"{room.name}/" in section, f"README architecture does not mention {room.name}/"
        for module in sorted(room.glob("*.py")):
            if module.stem != "__init__":
                assert module.stem in section, f"README does not mention {room.name}/{module.name}"
    for client in sorted((ROOT / "ledger" / "rpc").glob("*_client.py")):
        assert client.stem in section, f"README does not mention rpc/{client.name}"


def test_readme_configuration_table_is_generated_from_the_settings() -> None:
    from ledger.cli.manpage import with_config_table

    readme = (ROOT / "README.md").read_text()
    assert readme == with_config_table(readme), "the README's configuration table is stale:" \
        " run make man"
    for var in VARIABLES:
        assert f"| `{var.env}` |" in readme, var.env


def _operations() -> str:
    return (ROOT / "README.md").read_text().split("## Operations", 1)[1].split("\n## ", 1)[0]


def test_readme_operations_guide_covers_the_chores() -> None:
    section = _operations()
    for heading in ("### Backups", "### Upgrades and migrations", "### Retention",
                    "### Rotating the internal token and the JWT secret",
                    "### Configuration reference"):
        assert heading in section, heading
    for needle in ("pg_dump", "appendonlydir", "ledger db migrate", "LEDGER_INTERNAL_TOKEN",
                   "LEDGER_JWT_SECRET", "retention_days"):
        assert needle in section, needle


def test_every_ledger_command_in_the_operations_guide_exists() -> None:
    import re

    import typer

    from ledger.cli.main import app

    root = typer.main.get_command(app)
    quoted = re.findall(r"`ledger ([a-z][^`]*)`", _operations().replace("\n", " "))
    assert len(quoted) >= 8
    for line in quoted:
        command: Any = root
        words = line.split()
        while words and getattr(command, "commands", None) and words[0] in command.commands:
            command = command.commands[words.pop(0)]
        assert getattr(command, "commands", None) is None, f"`ledger {line}`: no such command"
        options = {opt for param in command.params for opt in param.opts}
        for word in words:
            if word.startswith("-"):
                assert word in options, f"`ledger {line}`: no option {word}"
