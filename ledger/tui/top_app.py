"""``ledger top``: one project's dashboard (or an account's, combined) from the cached metrics,
refreshed every few seconds.

The app knows nothing of HTTP: it is given ``fetch``, an async callable returning one snapshot
(the dict that ``ledger top --json`` prints), and calls it from one exclusive worker every
``refresh_seconds``; a failed fetch keeps the last figures on screen and says so in the status
line. Laid out for 80x24: status, error-rate sparkline, volume by level, then two tables
(top error groups with a trend, slowest routes by p95). ``/`` filters both tables, ``r``
refreshes now, ``q`` quits.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Input, Sparkline, Static

from ledger.errors import LedgerError

Snapshot = dict[str, Any]
Fetch = Callable[[], Awaitable[Snapshot]]
LEVELS = ("debug", "info", "warning", "error", "critical")
LEVEL_STYLES = {"critical": "bold #ffffff on #d70000", "error": "bold #ff5f5f",
                "warning": "#ffaf00", "info": "#5fd75f", "debug": "#8a8a8a"}
BARS = "▁▂▃▄▅▆▇█"


def trend_text(counts: list[int], width: int = 12) -> str:
    """Hourly counts as a tiny bar chart, the newest on the right (``width`` hours)."""
    tail = counts[-width:]
    peak = max(tail, default=0)
    if not peak:
        return " " * len(tail)
    return "".join(" " if not n else BARS[min(len(BARS) - 1, n * len(BARS) // (peak + 1))]
                   for n in tail)


def volume_24h(volume: list[dict[str, Any]]) -> dict[str, int]:
    """Logs per level over the last 24 hourly buckets."""
    return {level: sum(int(b.get(level, 0)) for b in volume[-24:]) for level in LEVELS}


class TopApp(App[None]):
    """The dashboard; ``snapshot`` holds the figures on screen."""

    CSS_PATH = "top.tcss"
    TITLE = "ledger top"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("slash", "filter", "Filter"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, fetch: Fetch, *, scope: str, refresh_seconds: float = 5.0) -> None:
        super().__init__()
        self.fetch = fetch
        self.scope = scope
        self.refresh_seconds = refresh_seconds
        self.snapshot: Snapshot | None = None
        self.problem: str | None = None
        self.fetched_at = 0.0
        self.filter_text = ""
        self.refreshes = 0

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with Horizontal(id="rate"):
            yield Static("errors/5m 24h ", id="rate-label")
            yield Sparkline([], id="sparkline")
            yield Static("", id="rate-peak")
        yield Static(id="volume")
        yield DataTable(id="errors", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="routes", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="filter error titles and routes…", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        errors = self.query_one("#errors", DataTable)
        errors.add_column("24h", width=6, key="count")
        errors.add_column("trend 12h", width=12, key="trend")
        errors.add_column("error group", key="title")
        routes = self.query_one("#routes", DataTable)
        routes.add_column("method", width=7, key="method")
        routes.add_column("route", width=36, key="route")
        routes.add_column("p95 ms", width=9, key="p95")
        routes.add_column("calls", width=8, key="count")
        self.query_one("#filter", Input).display = False
        self._show_status()
        self.refresh_now()
        self.set_interval(self.refresh_seconds, self.refresh_now)

    # -- data --------------------------------------------------------------------------------

    @work(exclusive=True, group="fetch")
    async def refresh_now(self) -> None:
        try:
            snapshot = await self.fetch()
        except LedgerError as exc:
            self.problem = exc.message
        except Exception as exc:  # the network, a proxy: keep the last figures
            self.problem = f"{type(exc).__name__}: {exc}"
        else:
            self.snapshot, self.problem, self.fetched_at = snapshot, None, time.time()
            self.refreshes += 1
            self._render_snapshot()
        self._show_status()

    def action_refresh(self) -> None:
        self.refresh_now()

    # -- filter ------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter_text = ""
        self._render_snapshot()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip().lower()
        self._render_snapshot()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#errors", DataTable).focus()

    # -- drawing -----------------------------------------------------------------------------

    def _show_status(self) -> None:
        text = Text()
        projects = (self.snapshot or {}).get("projects")  # an account's projects, combined
        count = f" ({len(projects)})" if isinstance(projects, list) else ""
        text.append(f" {self.scope or 'project'}{count} ", style="bold reverse")
        usage = (self.snapshot or {}).get("usage") or {}
        if usage:
            quota = usage.get("daily_quota") or 0
            text.append(f"  today {usage.get('accepted', 0):,}")
            text.append(f" / {quota:,} ({usage.get('percent')}%)" if quota else " (no quota)")
        if self.problem:
            text.append(f"  ⚠ {self.problem}"[:60], style="bold #ff5f5f")
        elif self.fetched_at:
            text.append(f"  updated {time.strftime('%H:%M:%S', time.localtime(self.fetched_at))}",
                        style="dim")
        else:
            text.append("  loading…", style="dim")
        if self.filter_text:
            text.append(f"  filter: {self.filter_text}", style="#ffaf00")
        self.query_one("#status", Static).update(text)

    def _render_snapshot(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        rate = [int(b["error_count"]) + int(b["critical_count"])
                for b in snapshot.get("error_rate", [])]
        self.query_one("#sparkline", Sparkline).data = rate or [0]
        self.query_one("#rate-peak", Static).update(f" peak {max(rate, default=0)}")
        volume = Text(" 24h ")
        for level, n in volume_24h(snapshot.get("log_volume", [])).items():
            volume.append(f"{level} ", style=LEVEL_STYLES[level])
            volume.append(f"{n:,}  ")
        self.query_one("#volume", Static).update(volume)
        wanted = self.filter_text
        errors = self.query_one("#errors", DataTable)
        errors.clear()
        for group in snapshot.get("top_errors", []):
            title = str(group.get("title") or "")
            if wanted and wanted not in title.lower():
                continue
            errors.add_row(f"{group.get('count_24h', 0):,}",
                           Text(trend_text(list(group.get("trend") or [])), style="#ff5f5f"),
                           Text(title, style=LEVEL_STYLES.get(str(group.get("level")), "")),
                           key=str(group.get("id")))
        routes = self.query_one("#routes", DataTable)
        routes.clear()
        for route in snapshot.get("slow_routes", []):
            if wanted and wanted not in str(route.get("route", "")).lower():
                continue
            p95 = route.get("p95_ms")
            routes.add_row(route.get("method", ""), route.get("route", ""),
                           "" if p95 is None else f"{p95:,.1f}", f"{route.get('count', 0):,}")
        self._show_status()
