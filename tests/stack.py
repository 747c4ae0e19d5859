"""End-to-end harness: real `ledger serve <daemon>` subprocesses, polled until healthy.

    settings = settings.with_overrides(...)             # from the `settings` fixture
    with Stack(settings, tmp_path) as stack:
        stack.start("auth", "ingest", "gateway")         # each on a free port, waits for health
        stack.url                                        # http://127.0.0.1:<gateway port>
        stack.kill("ingest"); stack.start("ingest")      # SIGKILL and restart one daemon
        stack.add("writer-1", "ingest", ingest_role="writer")  # more processes of a daemon
        stack.start("writer-1")

Each daemon's stderr goes to ``<tmp>/<name>.log``; a daemon that fails to become healthy fails
the test with the tail of that log.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ledger.config import Settings
from ledger.daemons.supervisor import check_healthy
from tests.ports import free_port

GRPC_DAEMONS = ("auth", "ingest", "query", "alerts")
LEDGER = [sys.executable, "-m", "ledger"]


class DaemonProcess:
    def __init__(self, name: str, proc: subprocess.Popen[bytes], port: int, log: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        self.name = name
        self.proc = proc
        self.port = port
        self.log = log
        #: The stack's ``extra_env`` it was started with.
        self.extra_env = dict(extra_env or {})

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: the daemon must exit by itself within ``timeout``."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)


class Stack:
    """A set of real daemons sharing one configuration."""

    def __init__(self, settings: Settings, workdir: Path, extra_env: dict[str, str] | None = None,
                 ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_env = extra_env or {}
        ports = {name: free_port() for name in ("gateway", *GRPC_DAEMONS)}
        self.settings = settings.with_overrides(
            gateway_listen=f"127.0.0.1:{ports['gateway']}",
            **{f"{n}_listen": f"127.0.0.1:{ports[n]}" for n in GRPC_DAEMONS},
            **{f"{n}_addr": f"127.0.0.1:{ports[n]}" for n in GRPC_DAEMONS},
        )
        self.ports = ports
        self.daemons: dict[str, DaemonProcess] = {}
        #: Extra processes: label -> (daemon, their own settings).
        self.specs: dict[str, tuple[str, Settings]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def env(self) -> dict[str, str]:
        return self.settings.child_environ(self.extra_env)

    def add(self, label: str, daemon: str, **overrides: Any) -> int:
        """Declare another process of ``daemon`` under ``label``, on a port of its own.

        It takes the stack's settings as they are now, plus ``overrides``; returns its port.
        """
        port = free_port()
        self.specs[label] = (daemon, self.settings.with_overrides(**{
            f"{daemon}_listen": f"127.0.0.1:{port}", f"{daemon}_addr": f"127.0.0.1:{port}",
            **overrides}))
        self.ports[label] = port
        return port

    def start(self, *names: str, timeout: float = 30.0) -> None:
        for name in names:
            self._spawn(name)
        for name in names:
            self.wait_healthy(name, timeout)

    def _spawn(self, name: str) -> None:
        old = self.daemons.get(name)
        if old is not None and old.alive():
            raise RuntimeError(f"{name} is already running")
        log = self.workdir / f"{name}.log"
        handle = log.open("ab")
        daemon, settings = self.specs.get(name, (name, self.settings))
        env = settings.child_environ(self.extra_env)
        proc = subprocess.Popen([*LEDGER, "serve", daemon], env=env, stdout=handle,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.workdir)
        handle.close()
        self.daemons[name] = DaemonProcess(name, proc, self.ports.get(name, 0), log,
                                           self.extra_env)

    def wait_healthy(self, name: str, timeout: float = 30.0) -> None:
        daemon = self.daemons[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not daemon.alive():
                raise AssertionError(f"{name} exited with {daemon.proc.returncode}:\n"
                                     f"{daemon.log_tail()}")
            if self._healthy(name):
                return
            time.sleep(0.1)
        raise AssertionError(f"{name} not healthy within {timeout}s:\n{daemon.log_tail()}")

    def _healthy(self, name: str) -> bool:
        daemon, settings = self.specs.get(name, (name, self.settings))
        return check_healthy(daemon, settings)

    def kill(self, name: str) -> None:
        self.daemons[name].kill()

    def stop(self, name: str) -> int:
        return self.daemons[name].stop()

    def close(self) -> None:
        # SIGTERM to all first, then wait: each stops within its own grace period, in parallel.
        running = [d for d in self.daemons.values() if d.alive()]
        for daemon in running:
            daemon.proc.send_signal(signal.SIGTERM)
        for daemon in running:
            try:
                daemon.stop(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
