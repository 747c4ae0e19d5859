"""`ledger tail --errors` through Textual's pilot, against a real stack (`ledger serve` processes).

The app reaches the gateway through ``Blip``, a TCP proxy whose connections the test can cut,
so "a network blip" is a real dropped connection, not a simulated one.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import ColumnKey

from ledger.config import Settings
from ledger.sse_client import EventSource
from ledger.tui.tail_app import TailApp
from tests.live_support import Blip, error_body, provision
from tests.stack import Stack

pytestmark = pytest.mark.e2e


@dataclass
class Live:
    stack: Stack
    blip: Blip
    project_id: str
    key: str

    def app(self, errors_only: bool = True) -> TailApp:
        path = "/api/v1/notifications/stream" if errors_only else "/api/v1/logs/tail"
        source = EventSource(f"{self.blip.url}{path}", headers={"X-API-Key": self.key},
                             retry_seconds=0.2)
        return TailApp(source, errors_only=errors_only, scope="shop",
                       project_names={self.project_id: "shop"})

    def ingest(self, message: str, **fields: object) -> None:
        answer = httpx.post(f"{self.stack.url}/api/v1/ingest/single",
                            json=error_body(message, **fields),
                            headers={"X-API-Key": self.key}, timeout=5)
        assert answer.status_code == 202, answer.text


@pytest.fixture
async def live(settings: Settings, tmp_path: Path) -> AsyncIterator[Live]:
    project_id, key = await provision(str(settings.auth_database_url), "shop")
    with Stack(settings, tmp_path / "stack") as stack:
        stack.start("auth", "ingest", "gateway")
        blip = Blip(stack.ports["gateway"])
        await blip.start()
        try:
            yield Live(stack, blip, project_id, key)
        finally:
            await blip.close()


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
        await until(pilot, lambda: messages(app) == ["disk full on /var"], "the first error")
        assert (column(app, "level"), column(app, "kind")) == (["ERROR"], ["ValueError"])
        headers = [str(c.label) for c in app.query_one("#table", DataTable).columns.values()]
        assert headers == ["Time", "Level", "Type", "Message", "Count"]  # one project: no column
        assert "shop" in status(app)
        detail = text_of(app.query_one("#detail-body", Static))
        assert "Stack trace" in detail and "shop/cart.py" in detail and "db-1" in detail

        await pilot.press("p")
        live.ingest("payment declined", fingerprint=["payment"])
        await until(pilot, lambda: len(app._unshown) == 1, "the event that arrives paused")
        assert messages(app) == ["disk full on /var"]
        assert "paused · 1 new" in status(app)
        await pilot.press("p")
        assert messages(app) == ["disk full on /var", "payment declined"]

        live.ingest("disk full on /home", fingerprint=["disk"])
        await until(pilot, lambda: len(messages(app)) == 3, "the third error")
        await pilot.press("slash")
        assert app.query_one("#filter", Input).has_focus
        await pilot.press(*"disk")
        assert messages(app) == ["disk full on /var", "disk full on /home"]
        assert "filter “disk”" in status(app)
        await pilot.press("enter")  # keeps the filter, back to the table
        live.ingest("payment declined", fingerprint=["payment"])  # filtered out on arrival
        live.ingest("disk on fire", fingerprint=["disk"])
        await until(pilot, lambda: "disk on fire" in messages(app), "a matching live error")
        assert "payment declined" not in messages(app)
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
        await until(pilot, lambda: messages(app) == ["before the blip"], "the first error")

        live.blip.cut()
        await until(pilot, lambda: app.connection.state == "waiting", "the drop to be noticed")
        assert "reconnecting in" in status(app)
        for n in range(3):
            live.ingest(f"during the blip {n}")
        live.blip.restore()

        await until(pilot, lambda: len(messages(app)) == 4, "the missed errors")
        assert messages(app) == ["before the blip", "during the blip 0", "during the blip 1",
                                 "during the blip 2"]
        assert app.connection.state == "connected" and "live" in status(app)
        live.ingest("after the blip")
        await until(pilot, lambda: messages(app)[-1:] == ["after the blip"], "live again")
        assert len(messages(app)) == 5


async def test_a_refused_key_ends_the_app_with_the_reason(live: Live) -> None:
    source = EventSource(f"{live.blip.url}/api/v1/notifications/stream",
                         headers={"X-API-Key": "ledger_nosuchkey01_" + "x" * 32})
    app = TailApp(source, errors_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.fatal is not None, "the refusal")
    assert app.fatal is not None and "invalid API key" in app.fatal.message
