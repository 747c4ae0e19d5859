"""The metrics port of a daemon (``LEDGER_<DAEMON>_METRICS_LISTEN``): ``GET /metrics`` only.

A few lines of asyncio rather than a web framework: one request per connection, a bounded
head read within a deadline (a scraper that stalls cannot hold a connection), then the
registry's text and close. Off unless the variable is set; the gateway has ``/metrics`` on its
own HTTP port instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ledger.daemons.prometheus import Registry
from ledger.errors import ConfigError

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HEAD_LIMIT_BYTES = 8192
HEAD_TIMEOUT_SECONDS = 5.0


class MetricsServer:
    """Serves ``registry`` on ``listen`` (HOST:PORT; port 0 picks one: see ``port``)."""

    def __init__(self, registry: Registry, listen: str, daemon: str) -> None:
        self.registry = registry
        self.listen = listen
        self.daemon = daemon
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        host, port = self.listen.rsplit(":", 1)
        try:
            self._server = await asyncio.start_server(self._serve, host.strip("[]") or None,
                                                      int(port), limit=HEAD_LIMIT_BYTES)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.listen} for the {self.daemon} metrics ({exc.strerror}):"
                f" set LEDGER_{self.daemon.upper()}_METRICS_LISTEN to a free HOST:PORT,"
                " or empty to turn the metrics port off") from exc
        self.port = int(self._server.sockets[0].getsockname()[1])
        logger.info("%s: Prometheus metrics on http://%s:%d/metrics", self.daemon,
                    host or "0.0.0.0", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                              HEAD_TIMEOUT_SECONDS)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return  # nothing sensible to answer: just close
            parts = head.split(b"\r\n", 1)[0].split()
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else (b"", b"")
            if method not in (b"GET", b"HEAD"):
                await _answer(writer, 405, b"only GET /metrics\n", "text/plain")
            elif path.split(b"?", 1)[0] != b"/metrics":
                await _answer(writer, 404, b"not found: the metrics are at /metrics\n",
                              "text/plain")
            else:
                body = (await self.registry.render()).encode()
                await _answer(writer, 200, b"" if method == b"HEAD" else body, CONTENT_TYPE,
                              length=len(body))
        except (ConnectionError, OSError):
            pass  # the scraper went away
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}


async def _answer(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str,
                  length: int | None = None) -> None:
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n"
            "Connection: close\r\n\r\n")
    writer.write(head.encode() + body)
    await writer.drain()


async def start_for(daemon: object, listen: str | None) -> MetricsServer | None:
    """The metrics server of ``daemon`` (its ``metrics`` registry) when ``listen`` is set."""
    registry = getattr(daemon, "metrics", None)
    if not listen or not isinstance(registry, Registry):
        return None
    server = MetricsServer(registry, listen, str(getattr(daemon, "name", "daemon")))
    await server.start()
    return server
