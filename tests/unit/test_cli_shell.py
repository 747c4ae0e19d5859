"""`ledger --version` and shell completion, as a shell user meets them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from ledger import __version__
from ledger.cli.main import app

LEDGER = Path(sys.executable).parent / "ledger"


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"ledger {__version__}"


def _complete(words: str, cword: int) -> list[str]:
    env = os.environ | {"_LEDGER_COMPLETE": "complete_bash", "COMP_WORDS": words,
                        "COMP_CWORD": str(cword)}
    done = subprocess.run([str(LEDGER)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_completion_offers_groups_commands_and_daemons() -> None:
    assert _complete("ledger ke", 1) == ["keys"]
    assert _complete("ledger keys ", 2) == ["create", "list", "revoke"]
    assert {"gateway", "ingest", "query"} <= set(_complete("ledger serve ", 2))


def test_install_completion_for_bash_writes_a_script_bash_can_source(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash, "bash is needed for this test"
    env = {"HOME": str(tmp_path), "PATH": os.environ["PATH"], "SHELL": bash}
    # Run from bash: the shell is detected from the parent process, as in a terminal. The
    # trailing command keeps bash the parent (`bash -c "one command"` execs it in its place,
    # and detection then found whatever shell, if any, had started the test run).
    done = subprocess.run([bash, "-c", f"{LEDGER} --install-completion; exit $?"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "bash completion installed" in done.stdout
    script = tmp_path / ".bash_completions" / "ledger.sh"
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
    check = subprocess.run([bash, "-c", f"source {script} && complete -p ledger"], env=env,
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    assert "_ledger_completion" in check.stdout
