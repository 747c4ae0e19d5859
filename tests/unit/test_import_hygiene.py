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


def _all_imports(path: Path) -> set[str]:
    """Every imported module, including ``from ledger.proto import auth_pb2`` as one."""
    tree = ast.parse(path.read_text(), str(path))
    found = _imports(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_textual_only_under_tui() -> None:
    offenders = [_rel(path) for path in _files(".")
                 if "tui" not in path.relative_to(ROOT).parts
                 and any(m.split(".")[0] == "textual" for m in _all_imports(path))]
    assert not offenders, f"textual imported outside ledger/tui/: {offenders}"


DAEMONS = ("gateway", "auth", "ingest", "query", "analytics", "alerts")
#: Imports between daemon packages that are known and on their way out: each must name why.
CROSS_DAEMON_PENDING: set[tuple[str, str]] = set()


def _daemon_of(module: str) -> str | None:
    """The daemon package ``module`` belongs to (``ledger.daemons.<name>...``), if any."""
    names = module.split(".")
    if names[:2] == ["ledger", "daemons"] and len(names) > 2 and names[2] in DAEMONS:
        return names[2]
    return None


@pytest.mark.parametrize("path", _files("daemons"), ids=_rel)
def test_no_daemon_imports_another_daemon(path: Path) -> None:
    parts = path.relative_to(ROOT / "daemons").parts
    own = parts[0] if len(parts) > 1 else None  # base.py, supervisor.py, checks.py: shared
    here = _rel(path).removeprefix("daemons/")
    bad = {module for module in _all_imports(path)
           if _daemon_of(module) not in (None, own)
           and (here, module) not in CROSS_DAEMON_PENDING
           and not any(module.startswith(m + ".") for h, m in CROSS_DAEMON_PENDING if h == here)}
    assert not bad, f"{path} imports another daemon's package: {bad}"


def test_pending_cross_daemon_imports_still_exist() -> None:
    """An entry of CROSS_DAEMON_PENDING that no longer happens must be deleted, not kept."""
    for rel, module in CROSS_DAEMON_PENDING:
        assert module in _imports(ROOT / "daemons" / rel), (rel, module)


#: The daemons' servicers: the only modules outside rpc/ and proto/ that handle messages.
SERVICERS = {"daemons/auth/servicer.py", "daemons/auth/sessions_servicer.py",
             "daemons/auth/notification_prefs.py", "daemons/query/servicer.py",
             "daemons/ingest/service.py", "daemons/ingest/stream.py",
             "daemons/alerts/servicer.py",
             "daemons/query/grouping_servicer.py", "daemons/query/metrics_servicer.py"}


def _is_generated(module: str) -> bool:
    return module.endswith(("_pb2", "_pb2_grpc"))


@pytest.mark.parametrize("path", _files("."), ids=_rel)
def test_protobuf_only_in_rpc_proto_and_servicers(path: Path) -> None:
    rel = _rel(path)
    if rel.startswith(("rpc/", "proto/")) or rel in SERVICERS:
        return
    generated = {m for m in _all_imports(path) if _is_generated(m)}
    if rel.startswith("daemons/") and rel.endswith("/daemon.py"):
        # A daemon registers its servicer (``add_…Servicer_to_server``) and nothing else.
        generated = {m for m in generated if not m.endswith("_pb2_grpc")}
    assert not generated, f"{rel} imports generated protobuf code: {generated}"


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
