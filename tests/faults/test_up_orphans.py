"""`ledger up` never leaves orphans: a SIGKILLed supervisor, a closed terminal (SIGHUP), the two
SIGTERMs of `kill -TERM` on a `make up` process group, and a stale stack from an earlier run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.embedded import free_port
from tests.e2e.test_up import UpProcess

pytestmark = pytest.mark.e2e

READY = "Press Ctrl-C to stop"


def _stack_pids(workdir: Path) -> dict[str, int]:
    state = json.loads((workdir / ".ledger" / "state.json").read_text())
    pids = {name: int(pid) for name, pid in state["daemons"].items()}
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
        tmp_path: Path) -> None:
    port = free_port()
    up = UpProcess(tmp_path, port)
    up.read_until(READY, timeout=120)
    pids = _stack_pids(tmp_path)
    assert set(pids) >= {"auth", "ingest", "query", "gateway", "redis"}
    assert all(_alive(pid) for pid in pids.values())

    up.proc.kill()  # what the OOM killer does: no handler runs
    up.proc.wait(30)
    assert up.proc.stdout is not None
    up.proc.stdout.close()
    assert _wait_all_gone(pids) == {}

    again = UpProcess(tmp_path, port)  # same data dir, same gateway port: nothing holds it
    try:
        banner = again.read_until(READY, timeout=120)
        assert "is in use" not in banner
    finally:
        assert again.interrupt() == 0, again.output


def test_sighup_stops_cleanly_and_a_stale_daemon_is_reported(tmp_path: Path) -> None:
    # A leftover of an earlier run that was not stopped: recorded in the state file and still
    # running with a `ledger serve` command line.
    stale = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                              "ledger", "serve", "ingest"])
    try:
        data = tmp_path / ".ledger"
        data.mkdir()
        (data / "state.json").write_text(json.dumps({"daemons": {"ingest": stale.pid}}))
        up = UpProcess(tmp_path, free_port())
        banner = up.read_until(READY, timeout=120)
        assert f"ingest daemon of an earlier `ledger up` on {data} is still running" \
               f" (pid {stale.pid})" in banner.replace("\n", " ")
        assert stale.wait(15) is not None

        pids = _stack_pids(tmp_path)
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


def test_two_sigterms_during_the_stop_still_stop_every_child(tmp_path: Path) -> None:
    up = UpProcess(tmp_path, free_port())
    up.read_until(READY, timeout=120)
    pids = _stack_pids(tmp_path)
    up.proc.send_signal(signal.SIGTERM)
    up.read_until("stopping", timeout=30)
    up.proc.send_signal(signal.SIGTERM)  # GNU make forwards a second one
    rest, _ = up.proc.communicate(timeout=60)
    output = up.output + rest.decode(errors="replace")
    assert up.proc.returncode == 0, output
    assert "Traceback" not in output
    assert "stopped" in output
    assert _wait_all_gone(pids) == {}
