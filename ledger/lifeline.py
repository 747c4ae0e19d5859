"""Child processes that never outlive the process that started them.

A supervisor can die without running any clean-up: SIGKILL from the OOM killer, or a closed
terminal whose SIGHUP arrives while it is busy. Its children (the daemons, the embedded Redis)
would then keep their ports, and the next `ledger up` would fail on them. On Linux the kernel can
signal a child when its parent dies (``PR_SET_PDEATHSIG``); that survives ``exec`` and needs no
cooperation from the child, so it covers redis-server too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
# sysexits EX_SOFTWARE: the child could not arrange to die with its parent.
_EXIT_NO_LIFELINE = 70


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen`` that ties the child's life to this process.

    The child gets ``sig`` when the thread that spawned it exits, so spawn from the main thread.
    Returns None where the platform has no such mechanism (the caller then relies on a clean
    stop alone).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def arm() -> None:  # runs in the child between fork and exec: no allocation-heavy work
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            os._exit(_EXIT_NO_LIFELINE)
        if os.getppid() != parent:  # the parent died before the lifeline was armed
            os._exit(_EXIT_NO_LIFELINE)

    return arm
