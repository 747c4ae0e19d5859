"""``GatewayDaemon``: the app served by uvicorn (httptools, uvloop) inside the daemon's loop.

The daemon binds the socket itself (a clear error for a busy port, and ``.port`` when the
listen address says port 0), enters the app's lifespan itself (so a startup failure raises its
real ``LedgerError`` out of ``start()``), and leaves signals to ``ledger.daemons.base.run``:
on SIGTERM ``stop()`` stops accepting, lets in-flight requests finish, then closes the
lifespan's clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn
from fastapi import FastAPI

from ledger.config import Settings
from ledger.daemons.gateway.app import create_app
from ledger.daemons.gateway.edge.slow_clients import HEAD_TIMEOUT_SECONDS, MAX_HEAD_BYTES
from ledger.daemons.gateway.live.wire import LiveHttpProtocol
from ledger.daemons.gateway.state import Gateway
from ledger.errors import ConfigError

logger = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 20
KEEP_ALIVE_SECONDS = 20
#: Connections plus requests in progress; past it uvicorn answers 503 at once.
MAX_CONCURRENCY = 10_000


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon runner owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"the gateway cannot listen on {listen} ({exc.strerror}): the port is in use or the"
            " address is wrong (set LEDGER_GATEWAY_LISTEN to another HOST:PORT)") from exc
    sock.setblocking(False)
    return sock


class GatewayDaemon:
    """The HTTP gateway (DESIGN §1): ``start()``, ``wait()``, ``stop()``; ``.port`` after start."""

    name = "gateway"

    def __init__(self, settings: Settings, app: FastAPI | None = None, *,
                 head_timeout_seconds: float = HEAD_TIMEOUT_SECONDS,
                 max_head_bytes: int = MAX_HEAD_BYTES,
                 max_concurrency: int = MAX_CONCURRENCY) -> None:
        self.settings = settings
        self._max_concurrency = max_concurrency
        self.app = app or create_app(settings)
        self._protocol = LiveHttpProtocol.bounded(head_timeout_seconds, max_head_bytes)
        self.port = 0
        self._stack = contextlib.AsyncExitStack()
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway

    async def start(self) -> None:
        await self._stack.enter_async_context(self.app.router.lifespan_context(self.app))
        try:
            sock = _bind(self.settings.gateway_listen)
            self.port = int(sock.getsockname()[1])
            config = uvicorn.Config(
                self.app, http=self._protocol, lifespan="off", access_log=False,
                log_config=None, limit_concurrency=self._max_concurrency,
                # Never rewrite the peer from X-Forwarded-For (uvicorn trusts 127.0.0.1 by
                # default): edge/client_address.py decides, from LEDGER_GATEWAY_TRUSTED_PROXIES.
                proxy_headers=False,
                server_header=False, timeout_keep_alive=KEEP_ALIVE_SECONDS,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, backlog=2048)
            self._server = _Server(config)
            self._serving = asyncio.create_task(self._server.serve(sockets=[sock]),
                                                name="gateway-http")
            while not self._server.started:
                if self._serving.done():
                    self._serving.result()  # raises what stopped it
                    raise RuntimeError("the gateway's HTTP server stopped while starting")
                await asyncio.sleep(0.01)
        except BaseException:
            await self._stack.aclose()
            raise
        logger.info("gateway listening on http://%s", _display(self.settings.gateway_listen,
                                                                self.port))

    async def wait(self) -> None:
        assert self._serving is not None, "start() first"
        watched = {self._serving, *self.gateway.tasks}
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"gateway task {task.get_name()} died") from task.exception()
        names = ", ".join(task.get_name() for task in done)
        raise RuntimeError(f"gateway task {names} stopped unexpectedly")

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self.gateway.closing.set()  # long-lived streams end so that shutdown can finish
            self._server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._serving),
                                       GRACEFUL_SHUTDOWN_SECONDS + 5)
            except TimeoutError:
                logger.error("gateway: HTTP server did not stop in time; closing anyway")
                self._serving.cancel()
            except Exception:
                logger.exception("gateway: HTTP server failed while stopping")
        await self._stack.aclose()


def _display(listen: str, port: int) -> str:
    host = listen.rpartition(":")[0] or "0.0.0.0"
    return f"{host}:{port}"
