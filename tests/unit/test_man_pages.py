"""Every committed man page renders with man(1) (or groff) without a single warning."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "man").glob("*.1"))


def _render(page: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MAN_KEEP_FORMATTING"}
    env |= {"MANWIDTH": "80", "LC_ALL": "C.UTF-8"}
    if shutil.which("man"):
        command = ["man", "-l", "--warnings", str(page)]
    else:  # no man-db: groff is what man would run, with every warning turned on
        command = ["groff", "-k", "-man", "-Tutf8", "-ww", "-P-cbou", str(page)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=30)


def test_there_is_a_page_per_command_group() -> None:
    names = {p.name for p in PAGES}
    assert {"ledger.1", "ledger-keys.1", "ledger-up.1", "ledger-serve.1", "ledger-db.1"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_renders_without_warnings(page: Path) -> None:
    rendered = _render(page)
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stderr == "", rendered.stderr
    title = page.stem.upper()
    assert rendered.stdout.lstrip().startswith(f"{title}(1)"), rendered.stdout[:200]
    assert "SYNOPSIS" in rendered.stdout and "SEE ALSO" in rendered.stdout
