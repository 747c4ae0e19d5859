"""CLI messages that must say what to do, checked where no stack is needed."""

from __future__ import annotations

import subprocess
import threading

from tests.ports import free_port
from tests.stack import LEDGER


def test_tail_json_names_the_url_it_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([*LEDGER, "tail", "--json", "--url", url, "--api-key",
                             "ledger_abcdefabcdef_0123456789abcdef"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    guard = threading.Timer(30, proc.kill)  # no notice at all: readline ends at EOF, not never
    guard.start()
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the first retry notice; tail keeps retrying after it
    finally:
        guard.cancel()
        proc.kill()
        proc.communicate(timeout=10)
    assert line.startswith(f"{url}/api/v1/logs/tail: ") and "retrying in" in line, line
