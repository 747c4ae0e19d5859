"""What every daemon is: start, serve until told to stop, stop cleanly.

``run(daemon)`` is what ``ledger serve <name>`` calls inside ``asyncio.run``: it wires SIGTERM
and SIGINT to a graceful stop, and a background task that dies stops the daemon loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Protocol

logger = logging.getLogger(__name__)


class Daemon(Protocol):
    name: str

    async def start(self) -> None:
        """Open pools and clients, bind servers. Raise LedgerError when that cannot be done."""

    async def wait(self) -> None:
        """Return when the daemon stops by itself (a background task died) — or never."""

    async def stop(self) -> None:
        """Finish or hand back in-flight work, then close everything ``start`` opened."""


class LoopDaemon:
    """A daemon whose work is ``run_once()`` called every ``interval`` seconds.

    Tests call ``run_once()`` directly; ``wait()`` runs the loop until ``stop()``.
    """

    name = "loop"
    interval = 60.0

    def __init__(self) -> None:
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        return None

    async def run_once(self) -> None:
        raise NotImplementedError

    async def wait(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception:
                logger.exception("%s: run failed; trying again in %.0fs", self.name, self.interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def stop(self) -> None:
        self._stopping.set()


async def run(daemon: Daemon, *, ready_message: str | None = None) -> None:
    """Start ``daemon``, log readiness, serve until SIGTERM/SIGINT or a failure, then stop it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await daemon.start()
    try:
        if ready_message:
            logger.info("%s", ready_message)
        waiter = asyncio.create_task(daemon.wait(), name=f"{daemon.name}-wait")
        stopper = asyncio.create_task(stop.wait(), name=f"{daemon.name}-signal")
        done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            stopper.cancel()
            exc = waiter.exception()
            if exc is not None:
                raise exc
        else:
            logger.info("%s: stopping", daemon.name)
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
    finally:
        await daemon.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
