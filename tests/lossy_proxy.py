"""A TCP proxy in front of Redis that loses one reply: the command ran, the client never hears.

What a network blip at the wrong moment does. Used to show that a script which changes counters
is never sent twice by a client that "helpfully" retries after a lost reply.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class LossyProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; drops the first reply to ``command``.

    After the command that matches has been forwarded, the next bytes Redis sends back on that
    connection are thrown away and the connection is closed, once for the proxy's life.
    """

    def __init__(self, target_host: str, target_port: int, command: bytes) -> None:
        self.target = (target_host, target_port)
        self.command = command
        self.port = 0
        self.dropped = 0  # replies lost so far (0 or 1)
        self.forwarded = 0  # how many times the command reached Redis
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> LossyProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # the pipes read EOF and end by themselves
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        self._writers.update((client_w, server_w))
        armed = asyncio.Event()  # the command went through on this connection

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if self.command in data.upper():
                    self.forwarded += data.upper().count(self.command)
                    if not self.dropped:
                        armed.set()
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if armed.is_set() and not self.dropped:
                    self.dropped += 1
                    return  # the reply is lost with the connection
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for writer in (client_w, server_w):
            writer.transport.abort()  # the other pipe ends on the closed sockets
            self._writers.discard(writer)
        await asyncio.gather(*tasks, return_exceptions=True)
