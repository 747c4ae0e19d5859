"""`ledger tail --errors` through Textual's pilot, against a real stack (`ledger serve` processes).

The app reaches the gateway through ``Blip``, a TCP proxy whose connections the test can cut,
so "a network blip" is a real dropped connection, not a simulated one.
"""

from __future__ import annotations

import io
import itertools
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import ColumnKey

from ledger.config import Settings
from ledger.sse_client import EventSource
from ledger.tui.tail_app import TailApp
from tests.conftest import create_database, drop_database
from tests.live_support import Blip, error_body, provision
from tests.stack import Stack

pytestmark = pytest.mark.e2e


@dataclass
class Live:
    stack: Stack
    blip: Blip
    project_id: str
    key: str
    slug: str

    def app(self, errors_only: bool = True, last_event_id: str | None = None) -> TailApp:
        path = "/api/v1/notifications/stream" if errors_only else "/api/v1/logs/tail"
        source = EventSource(f"{self.blip.url}{path}", headers={"X-API-Key": self.key},
                             retry_seconds=0.2, last_event_id=last_event_id)
        return TailApp(source, errors_only=errors_only, scope=self.slug,
                       project_names={self.project_id: self.slug})

    def ingest(self, message: str, **fields: object) -> None:
        answer = httpx.post(f"{self.stack.url}/api/v1/ingest/single",
                            json=error_body(message, **fields),
                            headers={"X-API-Key": self.key}, timeout=5)
        assert answer.status_code == 202, answer.text

    def ingest_many(self, logs: list[dict[str, object]]) -> None:
        answer = httpx.post(f"{self.stack.url}/api/v1/ingest/batch", json={"logs": logs},
                            headers={"X-API-Key": self.key}, timeout=10)
        assert answer.status_code == 202, answer.text


@pytest.fixture(scope="module")
def stack(pg_server_url: str, templates: dict[str, str], redis_db_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Auth, ingest and the gateway for the whole module (each test has a project of its own),
    on the run's own Redis db (each other test empties it before it starts) and databases of
    the module's own: starting a stack per test would cost seconds each."""
    names = {db: f"ledger_t{os.getpid()}_tail_{db}" for db in templates}
    urls = {db: create_database(pg_server_url, name, templates[db])
            for db, name in names.items()}
    workdir = tmp_path_factory.mktemp("tail")
    config = Settings(auth_database_url=urls["auth"], logs_database_url=urls["logs"],
                      redis_url=redis_db_url, internal_token=secrets.token_urlsafe(16),
                      jwt_secret=secrets.token_urlsafe(32), data_dir=workdir / "data")
    try:
        with Stack(config, workdir / "stack") as running:
            running.start("auth", "ingest", "gateway")
            yield running
    finally:
        for name in names.values():
            drop_database(pg_server_url, name)


@pytest.fixture
async def live(stack: Stack) -> AsyncIterator[Live]:
    slug = f"shop-{next(_projects)}"
    project_id, key = await provision(str(stack.settings.auth_database_url), slug)
    blip = Blip(stack.ports["gateway"])
    await blip.start()
    try:
        yield Live(stack, blip, project_id, key, slug)
    finally:
        await blip.close()


_projects = itertools.count(1)


async def until(pilot: Pilot[None], check: Callable[[], bool], what: str,
                timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def column(app: TailApp, key: str) -> list[str]:
    table = app.query_one("#table", DataTable)
    return [str(table.get_cell(row.key, key)) for row in table.ordered_rows]


def messages(app: TailApp) -> list[str]:
    return column(app, "message")


def shown(*errors: str) -> list[str]:
    """The Message column of ``error_body`` errors: the type, then the error's message."""
    return [f"ValueError: {error}" for error in errors]


def text_of(widget: Static) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=200, file=io.StringIO(), color_system=None)
    console.print(widget.content)
    return console.file.getvalue()  # type: ignore[attr-defined]


def status(app: TailApp) -> str:
    return text_of(app.query_one("#status", Static))


async def test_errors_appear_and_filter_pause_and_keys_work(live: Live) -> None:
    app = live.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "connected", "the stream")
        assert "live" in status(app)

        live.ingest("disk full on /var", attributes={"host": "db-1"}, fingerprint=["disk"])
        await until(pilot, lambda: messages(app) == shown("disk full on /var"), "the first error")
        assert (column(app, "level"), column(app, "kind")) == (["ERROR"], ["ValueError"])
        headers = [str(c.label) for c in app.query_one("#table", DataTable).columns.values()]
        assert headers == ["Time", "Level", "Type", "Message", "Count"]  # one project: no column
        assert "shop" in status(app)
        detail = text_of(app.query_one("#detail-body", Static))
        assert "Stack trace" in detail and "shop/cart.py" in detail and "db-1" in detail

        await pilot.press("p")
        live.ingest("payment declined", fingerprint=["payment"])
        await until(pilot, lambda: len(app._unshown) == 1, "the event that arrives paused")
        assert messages(app) == shown("disk full on /var")
        assert "paused · 1 new" in status(app)
        await pilot.press("p")
        assert messages(app) == shown("disk full on /var", "payment declined")

        live.ingest("disk full on /home", fingerprint=["disk"])
        await until(pilot, lambda: len(messages(app)) == 3, "the third error")
        await pilot.press("slash")
        assert app.query_one("#filter", Input).has_focus
        await pilot.press(*"disk")
        assert messages(app) == shown("disk full on /var", "disk full on /home")
        assert "filter “disk”" in status(app)
        await pilot.press("enter")  # keeps the filter, back to the table
        live.ingest("payment declined", fingerprint=["payment"])  # filtered out on arrival
        live.ingest("disk on fire", fingerprint=["disk"])
        await until(pilot, lambda: shown("disk on fire")[0] in messages(app),
                    "a matching live error")
        assert shown("payment declined")[0] not in messages(app)
        await pilot.press("escape")
        assert len(messages(app)) == 5

        table = app.query_one("#table", DataTable)
        assert table.cursor_row == 4  # following the newest
        await pilot.press("k", "k")
        assert table.cursor_row == 2
        await pilot.press("j")
        assert table.cursor_row == 3
        await pilot.press("e")
        assert table.cursor_row == 4
        await pilot.press("e")
        assert table.cursor_row == 0  # wraps around
        # Occurrences per fingerprint: disk, payment, disk, payment, disk.
        assert column(app, "count") == ["\u00d71", "\u00d71", "\u00d72", "\u00d72", "\u00d73"]

        widths = {str(c.key.value): c.width for c in table.columns.values()}
        await pilot.resize_terminal(60, 20)
        await until(pilot, lambda: table.columns[ColumnKey("message")].width < widths["message"],
                    "the columns to fit the narrower terminal")
        assert len(messages(app)) == 5

        await pilot.press("q")
    assert app.fatal is None


async def test_a_dropped_connection_reconnects_and_shows_what_was_missed(live: Live) -> None:
    app = live.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "connected", "the stream")
        live.ingest("before the blip")
        await until(pilot, lambda: messages(app) == shown("before the blip"), "the first error")

        live.blip.cut()
        await until(pilot, lambda: app.connection.state == "waiting", "the drop to be noticed")
        assert "reconnecting in" in status(app)
        for n in range(3):
            live.ingest(f"during the blip {n}")
        live.blip.restore()

        await until(pilot, lambda: len(messages(app)) == 4, "the missed errors")
        assert messages(app) == shown("before the blip", "during the blip 0", "during the blip 1",
                                      "during the blip 2")
        assert app.connection.state == "connected" and "live" in status(app)
        live.ingest("after the blip")
        await until(pilot, lambda: messages(app)[-1:] == shown("after the blip"), "live again")
        assert len(messages(app)) == 5


async def test_a_refused_key_ends_the_app_with_the_reason(live: Live) -> None:
    source = EventSource(f"{live.blip.url}/api/v1/notifications/stream",
                         headers={"X-API-Key": "ledger_nosuchkey01_" + "x" * 32})
    app = TailApp(source, errors_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.fatal is not None, "the refusal")
    assert app.fatal is not None and "invalid API key" in app.fatal.message


async def test_j_after_k_k_in_a_filtered_view_after_pause_and_resume_moves_one_row(
        live: Live) -> None:
    app = live.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "connected", "the stream")
        for n in range(3):
            live.ingest(f"disk full {n}", fingerprint=["disk"])
            live.ingest(f"payment declined {n}", fingerprint=["payment"])
        await until(pilot, lambda: len(messages(app)) == 6, "the first errors")
        await pilot.press("slash", *"disk", "enter")
        assert messages(app) == shown("disk full 0", "disk full 1", "disk full 2")
        await pilot.press("p")
        for n in range(3, 6):
            live.ingest(f"disk full {n}", fingerprint=["disk"])
            live.ingest(f"payment declined {n}", fingerprint=["payment"])
        await until(pilot, lambda: len(app._unshown) == 6, "the errors that arrive paused")
        await pilot.press("p")
        assert messages(app) == shown(*(f"disk full {n}" for n in range(6)))
        table = app.query_one("#table", DataTable)
        await pilot.pause()
        assert table.cursor_row == 5  # still following the newest
        await pilot.press("k", "k")
        assert table.cursor_row == 3
        await pilot.press("j")
        assert table.cursor_row == 4
        await pilot.pause(0.3)  # a few refresh ticks: nothing moves the cursor by itself
        assert table.cursor_row == 4

        # What did it: the table is filled again on a resize (or a filter edit), and
        # DataTable.clear() leaves the cursor on row 0, so the next j went to row 1.
        await pilot.press("k", "k")
        assert table.cursor_row == 2
        widths = {str(c.key.value): c.width for c in table.columns.values()}
        await pilot.resize_terminal(100, 30)
        await until(pilot, lambda: table.columns[ColumnKey("message")].width != widths["message"],
                    "the columns to fit the wider terminal")
        assert table.cursor_row == 2 and messages(app)[2] == shown("disk full 2")[0]
        await pilot.press("j")
        assert table.cursor_row == 3
        await pilot.press("slash", *" full", "enter")  # a refined filter keeps the row too
        assert messages(app)[table.cursor_row] == shown("disk full 3")[0]
        await pilot.press("j")
        assert table.cursor_row == 4
