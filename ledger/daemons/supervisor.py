"""`ledger up`: the whole stack as child processes of one command.

Embedded PostgreSQL and Redis under the data dir unless URLs are given, migrations, every daemon
as a `ledger serve <name>` child polled until healthy (ingest as several API and writer
processes, see ``layout``), a restart with backoff for a daemon that
dies, and a clean stop in reverse order on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ledger.config import Settings
from ledger.errors import UnavailableError
from ledger.lifeline import die_with_parent

logger = logging.getLogger(__name__)

DAEMON_ORDER = ("auth", "ingest", "query", "analytics", "alerts", "gateway")
GRPC_DAEMONS = ("auth", "ingest", "query", "alerts")
MAX_BACKOFF_SECONDS = 30.0


def built_daemons() -> list[str]:
    """The daemons this version of Ledger can run, in start order."""
    found = []
    for name in DAEMON_ORDER:
        try:
            module = importlib.import_module(f"ledger.daemons.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"ledger.daemons.{name}":
                raise
            continue
        if hasattr(module, "create"):
            found.append(name)
    return found


def check_healthy(name: str, settings: Settings) -> bool:
    """One health probe of daemon ``name`` as configured in ``settings``."""
    if name == "gateway":
        host, port = settings.gateway_listen.rsplit(":", 1)
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host.strip("[]")
        try:
            return httpx.get(f"http://{host}:{port}/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False
    if name in GRPC_DAEMONS:
        addr = getattr(settings, f"{name}_addr")
        # In a thread: the caller may already run an event loop (async tests).
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, _grpc_healthy(name, addr, settings)).result()
    return True  # no port to probe: being alive is all there is to tell


async def _grpc_healthy(name: str, addr: str, settings: Settings) -> bool:
    from ledger.rpc.channel import HealthClient

    client = HealthClient(name, addr, str(settings.internal_token or ""), timeout=1.0)
    try:
        response = await client.check_health(timeout=1.0)
        return bool(response.healthy)
    except Exception:  # any failure simply means "not healthy yet"
        return False
    finally:
        await client.close()


@dataclass
class Child:
    """One `ledger serve <daemon>` process with its log file and restart bookkeeping.

    ``name`` is unique among the children (``ingest-2``, ``writer-1``); ``daemon`` is what it
    serves, with its own ``settings`` (its port, its ingest role) when given.
    """

    name: str
    log: Path
    daemon: str = ""
    settings: Settings | None = None
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def spawn(self, env: dict[str, str], cwd: Path) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if self.settings is not None:
            env = self.settings.child_environ()
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ledger", "serve", self.daemon or self.name],
                env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=handle,
                stderr=subprocess.STDOUT,
                # Own process group: Ctrl-C in the terminal reaches only `ledger up`, which
                # then stops the children in order instead of all at once.
                start_new_session=True,
                # ...and it dies with `ledger up`, even when that is SIGKILLed (no orphans).
                preexec_fn=die_with_parent(),
            )
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def terminate(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
            self.proc.kill()
            self.proc.wait()


class Supervisor:
    """Starts, watches and stops the daemons of one local stack."""

    def __init__(self, settings: Settings, names: Iterable[str], workdir: Path,
                 report: Callable[[str], None],
                 on_spawn: Callable[[dict[str, int]], None] | None = None) -> None:
        self.settings = settings
        self.workdir = workdir
        self.report = report
        # Told every child's pid after each (re)start, so a later `ledger up` can find a stack
        # that was not stopped cleanly.
        self.on_spawn = on_spawn
        from ledger.daemons.layout import plan
        from ledger.daemons.ports import PortPicker
        from ledger.embedded import free_port

        self.children = {
            p.name: Child(p.name, settings.data_dir / "logs" / f"{p.name}.log", p.daemon,
                          p.settings)
            for p in plan(settings, names, PortPicker(settings, free_port).pick)}
        self._env = settings.child_environ()

    def start_all(self, timeout: float = 60.0) -> None:
        """Start every daemon in order; each must be healthy before the next starts."""
        for child in self.children.values():
            self._spawn(child)
            self._wait_healthy(child, timeout)

    def _spawn(self, child: Child) -> None:
        child.spawn(self._env, self.workdir)
        if self.on_spawn is not None:
            self.on_spawn({c.name: c.proc.pid for c in self.children.values()
                           if c.proc is not None})

    def _wait_healthy(self, child: Child, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise UnavailableError(
                    f"the {child.name} daemon exited during start-up; its log"
                    f" ({child.log}) ends with:\n{child.log_tail()}"
                )
            if check_healthy(child.daemon or child.name, child.settings or self.settings):
                return
            time.sleep(0.1)
        raise UnavailableError(f"the {child.name} daemon was not healthy within {timeout:.0f}s;"
                               f" see {child.log}")

    def watch_once(self) -> None:
        """Restart dead daemons, with exponential backoff, and say so."""
        now = time.monotonic()
        for child in self.children.values():
            if child.alive() or child.proc is None:
                continue
            if child.next_start == 0.0:
                # A daemon that ran for a while before dying starts again from a short delay.
                ran = now - child.started_at
                if ran > 60:
                    child.restarts = 0
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** child.restarts)
                child.next_start = now + delay
                self.report(f"{child.name} exited with code {child.proc.returncode};"
                            f" restarting in {delay:.1f}s (log: {child.log})")
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                self._spawn(child)
                self.report(f"{child.name} restarted (restart #{child.restarts})")

    def stop_all(self, timeout: float = 20.0) -> None:
        """SIGTERM in reverse start order (the gateway first), waiting for each."""
        for child in reversed(list(self.children.values())):
            child.terminate()
            child.wait(timeout)

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self.children.values() if c.proc is not None and c.alive()]


def port_free(listen: str) -> bool:
    import socket

    host, port = listen.rsplit(":", 1)
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]") or "0.0.0.0", int(port)))
        except OSError:
            return False
    return True
