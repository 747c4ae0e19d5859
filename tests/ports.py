"""Ports for the servers and daemons the tests start, one range per xdist worker.

``ledger.embedded.free_port`` asks the kernel for a port (bind to 0): one of its ephemeral
range (32768-60999), which every outgoing connection on the machine also draws from. Between
that answer and the daemon's bind, another worker's daemon or any client's connection can take
it, and the daemon fails to start ("the port is in use"). Here each worker hands out ports in
turn from a slice of its own below the ephemeral range: no outgoing connection takes one, no
other worker hands it out, and this worker does not hand it out again before it has gone
through its whole slice. Each is still checked free with a bind before it is handed out.
"""

from __future__ import annotations

import itertools
import os
import socket

FIRST, LAST = 20000, 32000  # below the kernel's ephemeral range


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker) if worker.isdigit() else 0
    size = (LAST - FIRST) // max(1, count)
    start = FIRST + (index % max(1, count)) * size
    return range(start, start + size)


_PORTS = _slice()
# A different starting point per run, so that a run right after another does not meet the
# ports the last one left in TIME_WAIT.
_turn = itertools.count(os.getpid() % len(_PORTS))


def free_port(host: str = "127.0.0.1") -> int:
    """A port of this worker's slice that nothing holds now (the caller binds it soon after)."""
    for _ in range(len(_PORTS)):
        port = _PORTS[next(_turn) % len(_PORTS)]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # held by something else: the next one
        return port
    raise RuntimeError(f"no free port in {_PORTS.start}-{_PORTS.stop - 1}")
