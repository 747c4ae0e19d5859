"""Documentation checked against the code: the man page, the README's promises."""

from __future__ import annotations

from pathlib import Path

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
