"""Every daemon in this process and one event loop: `ledger up --one-process` (the default).

Each daemon is the one ``ledger serve <name>`` runs (the same ``create``, ``start``, ``wait``
and ``stop``), and they still call each other over gRPC on loopback, so the production code
paths run. What they share is the interpreter and its imported modules: one copy of grpc,
psycopg, redis, FastAPI and pydantic instead of one per daemon, which is where most of a
multi-process stack's memory goes (bench/footprint.py measures both).

There is no restart here: a daemon whose ``wait()`` ends without being asked to (a background
task died) or whose ``start()`` fails stops every daemon, in reverse start order, and
``serve_together`` raises ``DaemonFailedError`` naming it — the process exits non-zero, loudly,
instead of running on with a part missing. A service manager (or the user) starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any

from ledger.config import Settings
from ledger.daemons.base import Daemon, start_metrics
from ledger.errors import LedgerError, UnavailableError

if TYPE_CHECKING:
    from ledger.daemons.metrics_server import MetricsServer

logger = logging.getLogger(__name__)

#: The daemons others call over gRPC: a port 0 in ``<name>_listen`` is resolved after start,
#: and the daemons started later are given the bound address in ``<name>_addr``.
_GRPC_DAEMONS = ("auth", "ingest", "query", "alerts")
#: Ctrl-C, a service manager's stop, a closed terminal.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_Handler = Callable[[int, FrameType | None], Any] | int | None


class DaemonFailedError(UnavailableError):
    """A daemon of the one-process stack failed; every daemon was stopped."""

    def __init__(self, daemon: str, message: str) -> None:
        super().__init__(message, service=f"the {daemon} daemon")
        self.daemon = daemon


def create_daemon(name: str, settings: Settings) -> Daemon:
    """The daemon ``ledger serve <name>`` would run with ``settings``, not started."""
    module = importlib.import_module(f"ledger.daemons.{name}")
    daemon: Daemon = module.create(settings)
    return daemon


def resolved(settings: Settings, name: str, port: int) -> Settings:
    """``settings`` with ``<name>_addr`` pointing at the port ``name`` bound, if it asked for 0.

    A fixed port was already in ``<name>_addr`` (``ledger up`` sets both); port 0 lets tests
    and a crowded machine start the stack with no port picked in advance.
    """
    if name not in _GRPC_DAEMONS:
        return settings
    host, _, wanted = getattr(settings, f"{name}_listen").rpartition(":")
    if wanted != "0":
        return settings
    target = host.strip("[]")
    target = "127.0.0.1" if target in ("", "0.0.0.0", "::") else host
    return settings.with_overrides(**{f"{name}_listen": f"{host}:{port}",
                                      f"{name}_addr": f"{target}:{port}"})


class OneProcess:
    """The daemons of one stack, started in order in the running loop and watched together."""

    def __init__(self, settings: Settings, names: Iterable[str]) -> None:
        self.settings = settings
        self.names = list(names)
        #: Started daemons by name, in start order (``stop`` goes backwards).
        self.daemons: dict[str, Daemon] = {}
        #: Each daemon's own metrics port (LEDGER_<DAEMON>_METRICS_LISTEN), as `ledger serve`
        #: gives it one: the registries stay per daemon in one process too.
        self.metrics: dict[str, MetricsServer | None] = {}

    async def start(self) -> None:
        """Create and start each daemon in order; the first that fails stops those started.

        Each daemon is created just before it starts, so that it sees the addresses of the
        ones before it (``resolved``).

        Raises:
            LedgerError: what the daemon's ``start()`` raised (it already names the problem).
            DaemonFailedError: the daemon failed with anything else.
        """
        for name in self.names:
            try:
                daemon = create_daemon(name, self.settings)
                await daemon.start()
            except BaseException as exc:
                await self.stop()
                if isinstance(exc, LedgerError) or not isinstance(exc, Exception):
                    raise
                logger.error("%s: failed to start", name, exc_info=exc)
                raise DaemonFailedError(
                    name, f"the {name} daemon failed to start ({_describe(exc)})") from exc
            self.daemons[name] = daemon
            try:
                self.metrics[name] = await start_metrics(daemon)
            except BaseException:
                await self.stop()
                raise
            self.settings = resolved(self.settings, name, int(getattr(daemon, "port", 0)))

    async def watch(self, stop: asyncio.Event) -> None:
        """Return when ``stop`` is set; raise ``DaemonFailedError`` when a daemon ends first."""
        waiters = {asyncio.create_task(_wait(daemon), name=f"{name}-wait"): name
                   for name, daemon in self.daemons.items()}
        stopper = asyncio.create_task(stop.wait(), name="one-process-stop")
        try:
            done, _ = await asyncio.wait({stopper, *waiters},
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stopper, *waiters):
                task.cancel()
            await asyncio.gather(stopper, *waiters, return_exceptions=True)
        failed = [task for task in waiters if task in done]
        if not failed:
            return
        task = failed[0]
        name = waiters[task]
        if task.cancelled():  # cancelled from inside the daemon, not by us
            logger.error("%s: its wait was cancelled; stopping every daemon", name)
            raise DaemonFailedError(name, f"the {name} daemon stopped unexpectedly (cancelled)")
        exc = task.exception()
        if exc is not None:
            logger.error("%s: failed; stopping every daemon", name, exc_info=exc)
            raise DaemonFailedError(name, f"the {name} daemon failed ({_describe(exc)})") from exc
        logger.error("%s: stopped by itself; stopping every daemon", name)
        raise DaemonFailedError(name, f"the {name} daemon stopped unexpectedly")

    async def stop(self) -> None:
        """Stop the started daemons in reverse order (the gateway first); each one's failure
        is logged and the others are stopped anyway."""
        for name in reversed(list(self.daemons)):
            daemon = self.daemons.pop(name)
            metrics = self.metrics.pop(name, None)
            try:
                if metrics is not None:
                    await metrics.stop()
                await daemon.stop()
            except Exception:  # one daemon's bad stop must not leave the others running
                logger.exception("%s: failed while stopping", name)


async def serve_together(settings: Settings, names: Iterable[str], *,
                         on_ready: Callable[[OneProcess], None] | None = None,
                         on_stopping: Callable[[], None] | None = None) -> None:
    """Start ``names`` in one process, serve until SIGINT/SIGTERM/SIGHUP, then stop them.

    ``on_ready`` runs in a worker thread once every daemon is started (``ledger up`` creates
    the default key and prints its banner there, while the daemons already serve);
    ``on_stopping`` runs when a signal asks the stack to stop.

    Raises:
        DaemonFailedError: a daemon failed to start, or failed while serving (the others were
            stopped first).
        LedgerError: a daemon's ``start()`` refused (a busy port, missing migrations...).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    previous: dict[int, _Handler] = {}
    for sig in _STOP_SIGNALS:
        previous[sig] = signal.getsignal(sig)
        loop.add_signal_handler(sig, stop.set)
    stack = OneProcess(settings, names)
    try:
        await stack.start()
        if on_ready is None:
            await stack.watch(stop)
        else:
            await _watch_while(stack, stop, on_ready)
        if on_stopping is not None:
            on_stopping()
    finally:
        await stack.stop()
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            # Back to what the caller had (``ledger up`` still has clean-up to do after us).
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(sig, previous[sig] if previous[sig] is not None else signal.SIG_DFL)


async def _watch_while(stack: OneProcess, stop: asyncio.Event,
                       on_ready: Callable[[OneProcess], None]) -> None:
    """``stack.watch(stop)`` while ``on_ready`` runs in a thread; what either raises is raised."""
    ready = asyncio.ensure_future(asyncio.to_thread(on_ready, stack))
    watching = asyncio.ensure_future(stack.watch(stop))
    try:
        await asyncio.wait({ready, watching}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            # The stack ended first (a signal, a failure): a thread cannot be cancelled, so
            # let it finish before the daemons it may be talking to are stopped.
            await asyncio.wait({ready})
            await watching
        ready.result()
        await watching
    finally:
        if not watching.done():  # on_ready failed: stop watching, the caller stops the stack
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching


async def _wait(daemon: Daemon) -> None:
    await daemon.wait()


def _describe(exc: BaseException) -> str:
    """The error and the first cause that says something more."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f", caused by {type(cause).__name__}: {cause}"
    return text
