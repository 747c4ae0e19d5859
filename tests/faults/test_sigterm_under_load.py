"""SIGTERM to each daemon in turn while logs stream in and reads go on: each exits 0 by itself,
and every log answered 202 is stored once.

A sender posts batches through the gateway and, like an SDK, sends the same logs (same ids)
again after anything but a 202: a 503 while a daemon restarts, a refused connection while the
gateway does. A reader keeps the query daemon busy meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.config import Settings
from tests.faults.support import account, logs, post_batch, stored_ids, wait_stored
from tests.stack import Stack
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e

DAEMONS = ("ingest", "auth", "query", "gateway")


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    with Stack(settings, tmp_path) as running:
        running.start("auth", "ingest", "query", "gateway")
        yield running


class Load:
    """A sender and a reader on their own threads until ``stop``."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.accepted: set[str] = set()
        self.answers: dict[int | str, int] = {}
        self.reads = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True),
                         threading.Thread(target=self._read, daemon=True)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _count(self, what: int | str) -> None:
        self.answers[what] = self.answers.get(what, 0) + 1

    def _send(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            n = 0
            while not self._stop.is_set():
                batch = logs(50, f"load {n}")
                n += 1
                while True:  # the same logs until accepted
                    try:
                        status: int | str = post_batch(http, self.key, batch).status_code
                    except httpx.TransportError as exc:
                        status = type(exc).__name__
                    self._count(status)
                    if status == 202:
                        self.accepted.update(r["log_id"] for r in batch)
                        break
                    self._stop.wait(0.1)

    def _read(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self._stop.is_set():
                try:
                    if http.get("/api/v1/logs", headers={"X-API-Key": self.key}).is_success:
                        self.reads += 1
                except httpx.TransportError:
                    pass
                self._stop.wait(0.05)


def _wait_for(load: Load, more_than: int) -> None:
    wait_until_blocking(lambda: len(load.accepted) > more_than,
                        f"more than {more_than} accepted (answers: {load.answers})",
                        interval=0.1)


def test_sigterm_each_daemon_under_load_exits_0_and_loses_nothing(
        stack: Stack, settings: Settings) -> None:
    url = str(settings.logs_database_url)
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        _, project, key = account(http)
    codes: dict[str, Any] = {}
    with Load(stack.url, key) as load:
        for name in DAEMONS:
            _wait_for(load, len(load.accepted))  # load is flowing before each stop
            codes[name] = stack.stop(name)
            stack.start(name)
        _wait_for(load, len(load.accepted))  # and after the last restart
    assert codes == dict.fromkeys(DAEMONS, 0), {n: stack.daemons[n].log_tail() for n in codes}
    assert load.reads > 0
    wait_stored(url, project["id"], len(load.accepted))
    assert stored_ids(url, project["id"]) == load.accepted
    for name in DAEMONS:
        assert "Traceback" not in stack.daemons[name].log.read_text(), name
