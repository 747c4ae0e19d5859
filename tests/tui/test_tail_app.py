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
from datetime import UTC, datetime

import httpx
import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Sparkline, Static
from textual.widgets.data_table import ColumnKey

from ledger.cli.tail import since_cursor
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

    def ingest(self, error: str, /, **fields: object) -> None:
        body = error_body(error)
        body.update(fields)
        answer = httpx.post(f"{self.stack.url}/api/v1/ingest/single", json=body,
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
    return column_of(app.query_one("#table", DataTable), key)


def column_of(table: DataTable[object], key: str) -> list[str]:
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
        assert (column(app, "level"), column(app, "kind")) == (["ERROR"], ["exception"])
        headers = [str(c.label) for c in app.query_one("#table", DataTable).columns.values()]
        assert headers == ["Time", "Level", "Type", "Message", "Count"]  # one project: no column
        assert "shop" in status(app)
        # The detail follows the highlight, a message of its own that may still be queued.
        await until(pilot, lambda: "Stack trace" in text_of(app.query_one("#detail-body", Static)),
                    "the detail pane")
        detail = text_of(app.query_one("#detail-body", Static))
        assert "shop/cart.py" in detail and "db-1" in detail

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


def plain(level: str, message: str) -> dict[str, object]:
    """A logging-style log (no exception) as an application sends it."""
    return {"timestamp": datetime.now(UTC).isoformat(), "level": level, "log_type": "logger",
            "message": message}


def screen_lines(app: TailApp) -> list[str]:
    """The screen as the terminal would show it, one string per line."""
    # The compositor's strips are exactly what a terminal receives (Textual's own snapshots
    # read them too); there is no public text export.
    return [strip.text for strip in app.screen._compositor.render_strips()]


def table_lines(app: TailApp, table_id: str = "#table") -> list[str]:
    """The table's lines on screen, the header first."""
    region = app.query_one(table_id, DataTable).region
    return [line[region.x:region.right] for line in screen_lines(app)[region.y:region.bottom]]


def footer(app: TailApp) -> str:
    return screen_lines(app)[-1]


async def test_rows_are_one_line_each_at_80_columns_and_exceptions_show_their_error(
        live: Live) -> None:
    app = live.app()
    long_type = "PaymentGatewayTimeoutError"
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "connected", "the stream")
        live.ingest("division by zero", error_type="ZeroDivisionError",
                    message="Unhandled exception in request handler")
        live.ingest("the gateway at https://pay.example.com/v2/charges did not answer within"
                    " 30 seconds\nretried 3 times", error_type=long_type,
                    message="Unhandled exception in request handler")
        live.ingest_many([plain("error", "disk almost full on /var: 97% used\nsecond line")])
        await until(pilot, lambda: len(messages(app)) == 3, "the three errors")
        shown_messages = messages(app)
        assert shown_messages[0] == "ZeroDivisionError: division by zero"
        assert not any("Unhandled exception" in m for m in shown_messages)
        assert shown_messages[1].startswith(f"{long_type}: the gateway at https://pay.example")
        assert shown_messages[1].endswith("30 seconds")  # the first line only
        assert shown_messages[2] == "disk almost full on /var: 97% used"

        times = column(app, "time")

        def rows_drawn() -> bool:
            # Every row's line, not just the last: CI once caught a frame with the third row
            # drawn and the first still blank. A row that stays blank still fails here.
            drawn = table_lines(app)[1:4]
            pairs = zip(drawn, times, strict=True)
            return all(line.lstrip().startswith(when) for line, when in pairs)

        await until(pilot, rows_drawn, "the three rows on screen")
        lines = table_lines(app)
        assert len(lines[0]) == 80 and "Message" in lines[0]
        message = app.query_one("#table", DataTable).columns[ColumnKey("message")]
        assert 20 < message.width < 40  # 80 columns leave the message about a third
        for line, when, text in zip(lines[1:4], times, shown_messages, strict=True):
            assert line.lstrip().startswith(when), line
            # Each row on its line: what fits of the message, then an ellipsis if cut.
            visible = text[:message.width - 1]
            assert visible in line and ("\u2026" in line) == (len(text) > message.width), line
        # The Type column says what kind of log it is; the error type is said once, in the
        # message, not repeated beside it.
        assert " exception " in lines[2] and lines[2].count("PaymentGatew") == 1
        assert all(not line.strip() for line in lines[4:])  # no row spilled onto a next line
        assert not any("second line" in line or "retried 3" in line for line in lines)


async def test_e_says_when_it_wraps_and_the_filter_placeholder_fits_80_columns(
        live: Live) -> None:
    app = live.app(errors_only=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await until(pilot, lambda: app.connection.state == "connected", "the stream")
        live.ingest_many([plain("error", "first error"), plain("info", "all good"),
                          plain("error", "second error"), plain("info", "still good")])
        await until(pilot, lambda: len(messages(app)) == 4, "the four logs")
        table = app.query_one("#table", DataTable)
        await pilot.press("e")
        assert table.cursor_row == 0
        await pilot.pause()
        await until(pilot, lambda: any("back to the first error" in line
                                       for line in screen_lines(app)), "the notice")
        app.clear_notifications()
        await pilot.press("e")
        assert table.cursor_row == 2
        await pilot.pause()
        assert not any("back to the first error" in line for line in screen_lines(app))

        await pilot.press("slash")
        box = app.query_one("#filter", Input)
        placeholder = str(box.placeholder)
        await until(pilot, lambda: any("Esc" in line for line in screen_lines(app)),
                    "the filter box on screen")
        assert any(placeholder in line for line in screen_lines(app)), placeholder
        await pilot.press(*"second", "enter")
        assert messages(app) == ["second error"]


async def test_f_gives_the_stack_trace_the_whole_screen_at_80x24(live: Live) -> None:
    frames = "".join(f'  File "shop/step{n}.py", line {n}, in step{n}\n    step{n + 1}()\n'
                     for n in range(20))
    trace = f"Traceback (most recent call last):\n{frames}ValueError: deep"
    app = live.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "connected", "the stream")
        live.ingest("deep", stack_trace=trace)
        await until(pilot, lambda: len(messages(app)) == 1, "the error")
        await until(pilot, lambda: "step19" in text_of(app.query_one("#detail-body", Static)),
                    "the detail pane")
        detail = app.query_one("#detail")
        assert "f Detail" in footer(app)
        on_screen = sum('File "shop/step' in line for line in screen_lines(app))
        assert on_screen <= 3  # what the issue saw: the table leaves the trace a few lines

        await pilot.press("f")
        await until(pilot, lambda: detail.region.height >= 20, "the detail to fill the screen")
        assert not app.query_one("#table").display and detail.has_focus
        lines = screen_lines(app)
        assert sum('File "shop/step' in line for line in lines) >= 8
        assert "ValueError: deep" in lines[2]  # the headline under the status line and rule
        keys = footer(app)
        assert "Scroll" in keys and "PgUp PgDn" in keys and "Esc Back" in keys, keys
        assert "Pause" not in keys and "Next error" not in keys, keys
        await pilot.press("pagedown")
        await until(pilot, lambda: detail.scroll_y > 0, "the trace to scroll")
        await pilot.press("end")
        await until(pilot, lambda: "step19()" in "".join(screen_lines(app)), "the trace's end")

        await pilot.press("escape")
        await pilot.pause()
        assert app.query_one("#table", DataTable).has_focus and detail.region.height < 12
        assert "Pause" in footer(app) and "Scroll" not in footer(app)
        await pilot.press("f", "f")  # f toggles both ways too
        assert not app.detail_full
        await pilot.press("tab")  # the small pane scrolls too, and says with which keys
        await until(pilot, lambda: "Scroll" in footer(app), "the detail's keys in the footer")
        assert detail.has_focus and "Esc Back" in footer(app)
        await pilot.press("escape")
        assert app.query_one("#table", DataTable).has_focus and not app.detail_full


async def test_sparkline_buckets_replayed_errors_by_the_minute_they_happened(
        live: Live) -> None:
    now = time.time()
    ago = {5: 3, 2: 2, 0: 1}  # minutes ago: errors
    live.ingest_many([error_body(f"replayed {m}m {n}",
                                 timestamp=datetime.fromtimestamp(now - 60 * m, UTC).isoformat())
                      for m, count in ago.items() for n in range(count)])
    app = live.app(last_event_id=since_cursor("10m"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(messages(app)) == 6, "the replayed errors")
        series = app.book.rate.series(now=now)
        assert (series[-6], series[-3], series[-1]) == (3, 2, 1)
        assert sum(series) == 6  # nothing else anywhere
        await until(pilot, lambda: list(app.query_one("#sparkline", Sparkline).data or [])
                    == app.book.rate.series(), "the sparkline to redraw")
        assert "peak 3" in text_of(app.query_one("#rate-peak", Static))


async def test_t_groups_a_flood_of_one_message_into_one_pattern_line(live: Live) -> None:
    app = live.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "connected", "the stream")
        flood = [error_body(f"disk full on shard {n}", fingerprint=["disk"]) for n in range(40)]
        flood += [error_body(f"card of user-{n} declined", error_type="PaymentError")
                  for n in range(3)]
        flood += [error_body("stock missing", error_type="KeyError")]
        live.ingest_many(flood)
        await until(pilot, lambda: len(messages(app)) == 44, "the flood")

        await pilot.press("t")
        patterns = app.query_one("#patterns", DataTable)
        assert patterns.display and not app.query_one("#table").display
        assert patterns.has_focus and "3 patterns" in status(app)
        headers = [str(c.label) for c in patterns.columns.values()]
        assert headers == ["Count", "Last seen", "Level", "Pattern"]
        templates = column_of(patterns, "template")
        assert templates == ["ValueError: disk full on shard <num>",
                             "PaymentError: card of user-<num> declined", "KeyError: stock missing"]
        assert column_of(patterns, "count") == ["\u00d740", "\u00d73", "\u00d71"]
        assert column_of(patterns, "level") == ["ERROR"] * 3
        assert all(len(t) == 8 for t in column_of(patterns, "last_seen"))  # HH:MM:SS
        assert len(table_lines(app, "#patterns")) >= 4  # one line each, header first
        detail = text_of(app.query_one("#detail-body", Static))
        assert "disk full on shard" in detail and "40\u00d7" in detail

        await pilot.press("j")
        assert patterns.cursor_row == 1
        live.ingest("disk full on shard 41", fingerprint=["disk"])
        await until(pilot, lambda: column_of(patterns, "count")[0] == "\u00d741",
                    "the live count")
        assert patterns.cursor_row == 1  # counting up moved nothing
        await pilot.resize_terminal(120, 30)
        await until(pilot, lambda: patterns.columns[ColumnKey("template")].width > 50,
                    "the patterns to fit the wider terminal")
        assert patterns.cursor_row == 1 and len(column_of(patterns, "template")) == 3

        await pilot.press("slash", *"stock", "enter")
        assert column_of(patterns, "template") == ["KeyError: stock missing"]
        await pilot.press("escape", "t")
        assert app.query_one("#table", DataTable).has_focus and len(messages(app)) == 45
