"""`ledger up` never leaves orphans: a SIGKILLed supervisor, a closed terminal (SIGHUP), the two
SIGTERMs of `kill -TERM` on a `make up` process group, and a stale stack from an earlier run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_up import UpProcess
from tests.ports import free_port

pytestmark = pytest.mark.e2e

READY = "Press Ctrl-C to stop"


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder outside pytest's own temporary root.

    As root, the embedded PostgreSQL runs as the user ``pgserver``, which must traverse every
    parent folder; each new pytest session resets ``/tmp/pytest-of-<user>`` to mode 0700, so a
    stack under ``tmp_path`` breaks whenever another test run starts on the machine.
    """
    path = Path(tempfile.mkdtemp(prefix="ledger-faults-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ups() -> Iterator[list[UpProcess]]:
    """Every `ledger up` a test starts, killed and its pipe closed whatever the test did."""
    started: list[UpProcess] = []
    yield started
    for up in started:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait(30)
        if up.proc.stdout is not None:
            up.proc.stdout.close()


def _stack_pids(workdir: Path) -> dict[str, int]:
    state = json.loads((workdir / ".ledger" / "state.json").read_text())
    # No "daemons" in the default one-process mode: they all live in `ledger up` itself.
    pids = {name: int(pid) for name, pid in state.get("daemons", {}).items()}
    pids["redis"] = int(state["redis_pid"])
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it holds no port and no memory.
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def _wait_all_gone(pids: dict[str, int], timeout: float = 30.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    left = pids
    while time.monotonic() < deadline:
        left = {name: pid for name, pid in pids.items() if _alive(pid)}
        if not left:
            return left
        time.sleep(0.2)
    return left


def test_sigkill_of_the_supervisor_takes_the_stack_down_and_a_new_up_starts(
        workdir: Path, ups: list[UpProcess]) -> None:
    port = free_port()
    up = UpProcess(workdir, port, "--processes")  # children that must die with it
    ups.append(up)
    up.read_until(READY, timeout=120)
    pids = _stack_pids(workdir)
    assert set(pids) >= {"auth", "ingest", "query", "gateway", "redis"}
    assert all(_alive(pid) for pid in pids.values())

    up.proc.kill()  # what the OOM killer does: no handler runs
    up.proc.wait(30)
    assert _wait_all_gone(pids) == {}

    again = UpProcess(workdir, port)  # same data dir, same gateway port: nothing holds it
    ups.append(again)
    banner = again.read_until(READY, timeout=120)
    assert "is in use" not in banner
    assert again.interrupt() == 0, again.output


def test_sighup_stops_cleanly_and_a_stale_daemon_is_reported(
        workdir: Path, ups: list[UpProcess]) -> None:
    # A leftover of an earlier run that was not stopped: recorded in the state file and still
    # running with a `ledger serve` command line.
    stale = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                              "ledger", "serve", "ingest"])
    try:
        data = workdir / ".ledger"
        data.mkdir()
        (data / "state.json").write_text(json.dumps({"daemons": {"ingest": stale.pid}}))
        up = UpProcess(workdir, free_port())  # the default, one-process mode
        ups.append(up)
        banner = up.read_until(READY, timeout=120)
        assert f"ingest daemon of an earlier `ledger up` on {data} is still running" \
               f" (pid {stale.pid})" in banner.replace("\n", " ")
        assert stale.wait(15) is not None

        pids = _stack_pids(workdir)
        assert set(pids) == {"redis"}
        up.proc.send_signal(signal.SIGHUP)  # the terminal was closed
        rest, _ = up.proc.communicate(timeout=60)
        output = up.output + rest.decode(errors="replace")
        assert up.proc.returncode == 0, output
        assert "stopped" in output
        assert _wait_all_gone(pids) == {}
        state = json.loads((data / "state.json").read_text())
        assert "daemons" not in state and "pid" not in state  # a clean stop leaves no stale pids
    finally:
        stale.kill()
        stale.wait()


def test_two_sigterms_during_the_stop_still_stop_every_child(
        workdir: Path, ups: list[UpProcess]) -> None:
    up = UpProcess(workdir, free_port(), "--processes")
    ups.append(up)
    up.read_until(READY, timeout=120)
    pids = _stack_pids(workdir)
    up.proc.send_signal(signal.SIGTERM)
    up.read_until("stopping", timeout=30)
    up.proc.send_signal(signal.SIGTERM)  # GNU make forwards a second one
    rest, _ = up.proc.communicate(timeout=60)
    output = up.output + rest.decode(errors="replace")
    assert up.proc.returncode == 0, output
    assert "Traceback" not in output
    assert "stopped" in output
    assert _wait_all_gone(pids) == {}
