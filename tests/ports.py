"""Ports for the servers and daemons the tests start, one range per xdist worker.

``ledger.embedded.free_port`` asks the kernel for a port (bind to 0): one of its ephemeral
range (32768-60999), which every outgoing connection on the machine also draws from. Between
that answer and the daemon's bind, another worker's daemon or any client's connection can take
it, and the daemon fails to start ("the port is in use"). Here each worker hands out ports in
turn from a slice of its own below the ephemeral range: no outgoing connection takes one, no
other worker hands it out, and this worker does not hand it out again before it has gone
through its whole slice. Each is still checked free with a bind before it is handed out.

Other runs of the suite on the same machine (another checkout, CI, a second `make test`) have
workers of the same names, so the slice is not taken from the worker's name alone: a worker
takes the first free one of ``SLICES`` slices, starting from its own index, and holds it with
an exclusive ``flock`` on a file of that slice for as long as it runs (the kernel drops the
lock when the process ends, however it ends). Only with every slice held does a worker share
one, as before.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import socket
import tempfile

FIRST, LAST = 20000, 32000  # below the kernel's ephemeral range
SLICES = 8  # workers of every run on the machine at once, each with a slice of its own
SIZE = (LAST - FIRST) // SLICES

_held: list[int] = []  # the lock file of this process's slice, open while it runs


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    return int(worker) if worker.isdigit() else 0


def _slice() -> range:
    first = _worker_index()
    for k in range(SLICES):
        index = (first + k) % SLICES
        path = os.path.join(tempfile.gettempdir(), f"ledger-test-ports-{index}.lock")
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # another worker, of this run or another, has it
            continue
        _held.append(fd)
        return range(FIRST + index * SIZE, FIRST + (index + 1) * SIZE)
    start = FIRST + (first % SLICES) * SIZE  # every slice held: share this worker's
    return range(start, start + SIZE)


_ports: range | None = None
_turn = itertools.count()


def _own_ports() -> range:
    """This process's slice, taken at its first port (a process that starts no server holds
    none)."""
    global _ports, _turn
    if _ports is None:
        _ports = _slice()
        # A different starting point per run, so that a run right after another does not meet
        # the ports the last one left in TIME_WAIT.
        _turn = itertools.count(os.getpid() % len(_ports))
    return _ports


def free_port(host: str = "127.0.0.1") -> int:
    """A port of this worker's slice that nothing holds now (the caller binds it soon after)."""
    ports = _own_ports()
    for _ in range(len(ports)):
        port = ports[next(_turn) % len(ports)]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # held by something else: the next one
        return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")
