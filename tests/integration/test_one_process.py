"""Every daemon in one event loop (`ledger up --one-process`): real daemons, real gRPC between
them on ports the OS picks, real PostgreSQL and Redis; one that fails stops them all, loudly."""

from __future__ import annotations

import asyncio
import functools
import socket
from datetime import UTC, datetime

import httpx
import pytest

from ledger.config import Settings
from ledger.core.bootstrap import ensure_default_setup
from ledger.daemons.ingest.daemon import IngestDaemon
from ledger.daemons.one_process import DaemonFailedError, OneProcess
from ledger.errors import ConfigError
from tests.waiting import wait_until

EVERY_DAEMON = ("auth", "ingest", "query", "analytics", "alerts", "gateway")


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_a_dying_daemon_task_stops_every_daemon_and_names_it(settings: Settings) -> None:
    settings = settings.with_overrides(alerts_listen="127.0.0.1:0")
    setup = await ensure_default_setup(settings)
    stack = OneProcess(settings, EVERY_DAEMON)
    await stack.start()
    stop = asyncio.Event()
    watching = asyncio.create_task(stack.watch(stop))
    try:
        ports = {name: int(getattr(d, "port", 0)) for name, d in stack.daemons.items()}
        url = f"http://127.0.0.1:{ports['gateway']}"
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            # The gateway reached ingest and auth over loopback gRPC at the ports they bound.
            answer = await client.post(
                "/api/v1/ingest/single", headers={"X-API-Key": str(setup.full_key)},
                json={"timestamp": datetime.now(UTC).isoformat(), "level": "info",
                      "message": "one loop"})
            assert answer.status_code == 202, answer.text
        ingest = stack.daemons["ingest"]
        assert isinstance(ingest, IngestDaemon)
        ingest._tasks[0].cancel()  # a writer task ends without being asked to

        with pytest.raises(DaemonFailedError) as failed:
            await asyncio.wait_for(watching, 30)
        assert failed.value.daemon == "ingest"
        assert "the ingest daemon failed" in failed.value.message
        assert "ingest-writer-0 stopped unexpectedly" in failed.value.message
        assert failed.value.exit_code != 0
    finally:
        stop.set()
        await stack.stop()
    assert stack.daemons == {}
    for name, port in ports.items():
        if port:
            assert await wait_until(functools.partial(_refused, port),
                                    f"{name} stopped listening")


async def test_a_daemon_that_cannot_start_stops_those_before_it(settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        stack = OneProcess(settings.with_overrides(gateway_listen=f"127.0.0.1:{taken}"),
                           ("auth", "ingest", "gateway"))
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{taken}"):
            await stack.start()
    assert stack.daemons == {}  # auth and ingest were stopped again
    for name in ("auth", "ingest"):
        listen = getattr(stack.settings, f"{name}_listen")
        port = int(listen.rsplit(":", 1)[1])
        assert port != 0
        assert await wait_until(functools.partial(_refused, port), f"{name} stopped listening")
