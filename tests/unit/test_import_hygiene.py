"""The layering rules of CONVENTIONS.md, checked on the source (imports point down)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "ledger"
FRAMEWORKS = {"typer", "rich", "textual", "fastapi", "uvicorn", "grpc", "starlette"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _files(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        target = ROOT / part
        out.extend([target] if target.suffix == ".py" else sorted(target.rglob("*.py")))
    return out


@pytest.mark.parametrize("path", _files("core", "db", "queue", "bus.py", "config.py", "errors.py"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_lower_layers_import_no_framework(path: Path) -> None:
    bad = {m for m in _imports(path) if m.split(".")[0] in FRAMEWORKS}
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", _files("daemons"), ids=lambda p: str(p.relative_to(ROOT)))
def test_daemons_never_import_cli_or_tui(path: Path) -> None:
    bad = {m for m in _imports(path) if m.startswith(("ledger.cli", "ledger.tui"))}
    assert not bad, f"{path} imports {bad}"


def test_textual_only_under_tui() -> None:
    for path in _files("."):
        if "tui" in path.relative_to(ROOT).parts:
            continue
        assert not {m for m in _imports(path) if m.split(".")[0] == "textual"}, path


def test_only_config_reads_the_environment() -> None:
    for path in _files("."):
        if path.name == "config.py" or "proto" in path.parts:
            continue
        assert "os.environ" not in path.read_text(), path
        assert "os.getenv" not in path.read_text(), path


def test_cli_help_imports_no_heavy_library() -> None:
    """`ledger --help` must stay fast: no grpc, fastapi, textual or psycopg at import."""
    code = (
        "import sys, ledger.cli.main as m\n"
        "heavy = {'grpc', 'fastapi', 'textual', 'uvicorn', 'psycopg', 'redis'}\n"
        "print(sorted(heavy & {n.split('.')[0] for n in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
