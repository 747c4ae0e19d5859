"""``ledger tail``: a live table of errors (or of all logs) fed by the gateway's SSE stream.

The stream is read by one exclusive worker that only appends to a list; a timer moves what
arrived into the table ten times a second, so a burst of events is one repaint rather than
hundreds (nothing flickers). The connection reconnects by itself, resuming with
``Last-Event-ID``; the status line says whether it is live and, when not, when it retries.

``t`` swaps the table for the pattern view (``ledger.core.patterns``: the messages grouped by
their normalised template, with counts), so that a flood of one message is one line; ``f``
gives the selected row's detail (its stack trace) the whole screen.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Input, Sparkline, Static

from ledger.core.log_search import LOG_TYPES
from ledger.core.patterns import Pattern, PatternMiner
from ledger.errors import LedgerError
from ledger.sse_client import Connection, EventSource, ServerEvent
from ledger.tui.rows import LogRow, RowBook, parse_time

# Explicit colours: Textual themes remap the named ANSI ones (red and magenta came out alike).
LEVEL_STYLES = {
    "critical": "bold #ffffff on #d70000",
    "error": "bold #ff5f5f",
    "warning": "#ffaf00",
    "info": "#5fd75f",
    "debug": "#8a8a8a",
}
TYPE_STYLE = "#af87ff"
PROJECT_STYLE = "#5fd7ff"
REPEAT_STYLE = "bold #ffaf00"
#: Fixed columns (key, label, width); the project column only when following several projects.
_FIXED = (("time", "Time", 8), ("level", "Level", 8), ("project", "Project", 10),
          ("kind", "Type", 16))
_SINGLE_PROJECT = tuple(c for c in _FIXED if c[0] != "project")
_COUNT_WIDTH = 5
_KIND_WIDTH = max(len(t) for t in LOG_TYPES)
_CELL_PADDING = 2  # DataTable pads each cell by one column on both sides
_MIN_MESSAGE = 12
#: The pattern view's fixed columns (key, label, width); the template takes the rest.
_PATTERN_FIXED = (("count", "Count", 7), ("last_seen", "Last seen", 9), ("level", "Level", 8))
#: Patterns listed at most (the most frequent): the view is for floods, not for the long tail.
PATTERN_ROWS = 500
#: Fits an 80-column terminal inside the input's border and padding (a test checks it).
FILTER_PLACEHOLDER = "filter message/type/level/project/fingerprint · Enter keeps · Esc clears"


def cut(text: str, style: str = "") -> Text:
    """A cell that, wider than its column, ends in an ellipsis: a cut is never silent."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _level_text(level: str) -> Text:
    return Text(level.upper()[:8], style=LEVEL_STYLES.get(level, ""))


def _local_time(row: LogRow) -> str:
    when = row.time
    return when.astimezone().strftime("%H:%M:%S") if when else ""


class StatusLine(Static):
    """Connection state, reconnect countdown, what is followed, pause and filter."""


class DetailPane(VerticalScroll):
    """The selected row in full: stack trace and attributes.

    Focused (Tab, or ``f`` for the whole screen) it scrolls with the keys its footer lists.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "scroll_down", "Scroll", key_display="\u2191\u2193"),
        Binding("up", "scroll_up", "Scroll up", show=False),
        Binding("j", "scroll_down", "Scroll down", show=False),
        Binding("k", "scroll_up", "Scroll up", show=False),
        Binding("pagedown,space", "page_down", "Page", key_display="PgUp PgDn"),
        Binding("pageup,b", "page_up", "Page up", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
        Binding("escape", "app.escape", "Back", key_display="Esc"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(Text("Select a row to see its stack trace and attributes.", style="dim"),
                     id="detail-body")

    def show(self, row: LogRow | None, project: str) -> None:
        self.show_content(_detail(row, project) if row is not None else "")

    def show_content(self, content: RenderableType) -> None:
        self.query_one("#detail-body", Static).update(content)
        self.scroll_home(animate=False)


def _pattern_detail(pattern: Pattern) -> RenderableType:
    title = Text.assemble((" PATTERN ", "bold #000000 on #5fd7ff"), " ",
                          (pattern.template, "bold"))
    seen = [f"{pattern.count}\u00d7 this session"]
    for label, raw in (("first", pattern.first_seen), ("last", pattern.last_seen)):
        when = parse_time(raw)
        if when is not None:
            seen.append(f"{label} {when.astimezone().strftime('%Y-%m-%d %H:%M:%S')}")
    levels = ", ".join(f"{level} {n}" for level, n in
                       sorted(pattern.levels.items(), key=lambda item: -item[1]))
    parts: list[RenderableType] = [title, Text(" · ".join(seen), style="dim")]
    if levels:
        parts.append(Text.assemble(("levels ", "dim"), levels))
    parts.append(Text.assemble(("e.g. ", "dim"), pattern.sample))
    return Group(*parts)


def _detail(row: LogRow, project: str) -> RenderableType:
    if row.gap is not None:
        return Text(row.gap + "\nThe stream said so explicitly: nothing was lost silently.",
                    style=LEVEL_STYLES["warning"])
    data = row.data
    title = Text()
    title.append(f" {row.level.upper()} ", style=LEVEL_STYLES.get(row.level, "reverse"))
    title.append(" ")
    if data.get("error_type"):
        title.append(f"{data['error_type']}: ", style=f"bold {TYPE_STYLE}")
    headline = str(data.get("error_message") or row.message)
    title.append(headline, style="bold")
    when = row.time
    facts = [project, str(data.get("environment") or ""),
             f"release {data['release']}" if data.get("release") else "",
             when.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if when else "",
             f"log {data.get('id', '')}"]
    meta = Text(" · ".join(f for f in facts if f), style="dim")
    parts: list[RenderableType] = [title, meta]
    if row.fingerprint:
        parts.append(Text.assemble(("fingerprint ", "dim"), (row.fingerprint[:16], PROJECT_STYLE),
                                   (f"  seen {row.count}\u00d7 this session", "dim")))
    message = str(data.get("message") or "").strip()
    if message and message not in (headline, f"{data.get('error_type')}: {headline}"):
        parts.append(Text(message))
    stack = str(data.get("stack_trace") or "")
    if stack:
        parts.append(Text("Stack trace", style="bold underline"))
        if stack.lstrip().startswith("Traceback"):
            parts.append(Syntax(stack.rstrip(), "pytb", theme="ansi_dark", word_wrap=True,
                                background_color="default"))
        else:
            parts.append(Text(stack.rstrip()))
    attributes = data.get("attributes")
    if attributes:
        parts.append(Text("Attributes", style="bold underline"))
        parts.append(JSON.from_data(attributes, indent=2))
    return Group(*parts)


class TailApp(App[None]):
    """The live table. ``fatal`` holds the error that ended it, if one did."""

    CSS_PATH = "tail.tcss"
    TITLE = "ledger tail"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("slash", "filter", "Filter"),
        Binding("p", "pause", "Pause"),
        Binding("e", "next_error", "Next error"),
        Binding("j", "cursor(1)", "Down", show=False),
        Binding("k", "cursor(-1)", "Up", show=False),
        Binding("G", "follow", "Follow"),
        Binding("f", "toggle_detail", "Detail"),
        Binding("t", "toggle_patterns", "Patterns"),
        Binding("escape", "escape", "Back", show=False),
    ]
    #: What the expanded detail or the pattern view leave out (they would do nothing useful).
    _TABLE_ONLY = frozenset({"next_error", "follow"})
    _NOT_IN_FULL_DETAIL = _TABLE_ONLY | {"pause", "filter", "toggle_patterns"}

    def __init__(self, source: EventSource, *, errors_only: bool, scope: str = "",
                 project_names: dict[str, str] | None = None, limit: int = 5000) -> None:
        super().__init__()
        self.source = source
        self.errors_only = errors_only
        self.scope = scope
        self.project_names = dict(project_names or {})
        self.projects: list[str] = list(self.project_names)
        self.book = RowBook(limit)
        self.fatal: LedgerError | None = None
        self.paused = False
        self.follow = True
        self.filter_text = ""
        self.connection = Connection("connecting")
        self._incoming: list[tuple[str, str | None, dict[str, Any]]] = []
        self._unshown: list[LogRow] = []  # received while paused
        self._shown: list[LogRow] = []  # the table's rows, in order
        self._built: tuple[tuple[tuple[str, str, int], ...], int] = ((), 0)
        self._status = Text()
        self._peak = ""
        self.detail_full = False
        self.showing_patterns = False
        self.miner = PatternMiner()
        self._mined = 0  # messages the miner has seen: the pattern view refreshes when it grew
        self._patterns_drawn = -1
        self._pattern_rows: list[Pattern] = []  # the pattern table's rows, in order

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="rate"):
            yield Static("errors/min ", id="rate-label")
            yield Sparkline(self.book.rate.series(), summary_function=max, id="sparkline")
            yield Static("", id="rate-peak")
        yield DataTable(id="table", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="patterns", cursor_type="row", zebra_stripes=True)
        yield DetailPane(id="detail")
        yield Input(placeholder=FILTER_PLACEHOLDER, id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "ledger tail --errors" if self.errors_only else "ledger tail"
        self._build_columns()
        self.query_one("#filter", Input).display = False
        self.query_one("#patterns", DataTable).display = False
        self.set_interval(0.1, self._drain_incoming)
        self.set_interval(0.5, self._tick)
        self._refresh_status()
        self._follow_stream()

    def _fit_to_width(self) -> None:
        """Lay the columns out again when the terminal's width changed."""
        if self._layout() != self._built:
            self._relayout()

    def _relayout(self) -> None:
        # The selections first: clearing the columns clears the rows and the cursor with them.
        selected, pattern = self._selected_row(), self._selected_pattern()
        self._build_columns()
        self._rebuild_rows(selected)
        self._pattern_rows = []
        if self.showing_patterns:
            self._refresh_patterns(force=True, selected=pattern)

    def _layout(self) -> tuple[tuple[tuple[str, str, int], ...], int]:
        """The fixed columns and the message's width that fill the terminal's width."""
        # The longest log type ("exception") fits; past that the width is the message's.
        kind_width = _KIND_WIDTH
        fixed = tuple((key, label, kind_width if key == "kind" else width)
                      for key, label, width in
                      (_FIXED if len(self.projects) > 1 else _SINGLE_PROJECT))
        used = sum(width for _, _, width in fixed) + _COUNT_WIDTH
        padding = (len(fixed) + 2) * _CELL_PADDING
        scrollbar = 2
        return fixed, max(_MIN_MESSAGE, self.size.width - used - padding - scrollbar)

    def _build_columns(self) -> None:
        table = self.query_one("#table", DataTable)
        table.clear(columns=True)
        self._built = self._layout()
        fixed, message_width = self._built
        for key, label, width in fixed:
            table.add_column(label, width=width, key=key)
        table.add_column("Message", width=message_width, key="message")
        table.add_column("Count", width=_COUNT_WIDTH, key="count")
        patterns = self.query_one("#patterns", DataTable)
        patterns.clear(columns=True)
        for key, label, width in _PATTERN_FIXED:
            patterns.add_column(label, width=width, key=key)
        patterns.add_column("Pattern", width=self._pattern_width(), key="template")

    def _pattern_width(self) -> int:
        used = sum(width for _, _, width in _PATTERN_FIXED)
        padding = (len(_PATTERN_FIXED) + 1) * _CELL_PADDING
        return max(_MIN_MESSAGE, self.size.width - used - padding - 2)

    # -- the stream -------------------------------------------------------------------------

    @work(exclusive=True, group="stream")
    async def _follow_stream(self) -> None:
        try:
            async for item in self.source.stream():
                if isinstance(item, Connection):
                    self.connection = item
                    self._refresh_status()
                elif item.event in ("error_notification", "log"):
                    self._incoming.append(("log", item.id, _as_dict(item)))
                elif item.event == "skipped":
                    self._incoming.append(("gap", None, _as_dict(item)))
                elif item.event == "connected":
                    self._connected(_as_dict(item))
        except LedgerError as exc:
            self.fatal = exc
            self.exit(return_code=exc.exit_code)

    def _connected(self, hello: dict[str, Any]) -> None:
        projects = [str(p) for p in hello.get("projects") or []]
        if len(projects) > 1 and len(self.projects) <= 1:
            # Several projects: the table needs its project column, laid out once.
            self.projects = projects
            self._relayout()
        self.projects = projects

    def _drain_incoming(self) -> None:
        if not self._incoming or not self.is_running:
            return
        incoming, self._incoming = self._incoming, []
        dropped: list[LogRow] = []
        for kind, event_id, data in incoming:
            row, old = (self.book.add_event(event_id, data) if kind == "log"
                        else self.book.add_gap(data))
            self._unshown.append(row)
            if old is not None:
                dropped.append(old)
            if row.gap is None:
                # The text the Message column shows: an exception's type and error, which is
                # what tells two exceptions apart (their logging message is often the same).
                self.miner.add(row.message, level=row.level or None,
                               timestamp=str(data.get("timestamp") or "") or None)
                self._mined += 1
        self._drop(dropped)
        self._update_rate()
        if not self.paused:
            self._show(self._take_unshown())
            if self.showing_patterns:
                self._refresh_patterns()
        self._refresh_status()

    def _take_unshown(self) -> list[LogRow]:
        rows, self._unshown = self._unshown, []
        # By identity: ``row in deque`` compares rows field by field, from the oldest, which
        # for a burst into a full book was millions of dict comparisons in one repaint.
        kept = {id(r) for r in self.book.rows}
        return [r for r in rows if id(r) in kept or r.gap is not None]

    def _show(self, rows: Iterable[LogRow]) -> None:
        table = self.query_one("#table", DataTable)
        added = False
        for row in rows:
            if row.gap is None and not row.matches(self.filter_text):
                continue
            table.add_row(*self._cells(row), key=row.key)
            self._shown.append(row)
            added = True
        if added and self.follow:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def _drop(self, rows: list[LogRow]) -> None:
        if not rows:
            return
        table = self.query_one("#table", DataTable)
        gone = {id(r) for r in rows}
        for row in rows:
            if row.key in table.rows:
                table.remove_row(row.key)
        self._shown = [r for r in self._shown if id(r) not in gone]

    def _cells(self, row: LogRow) -> tuple[Text, ...]:
        if row.gap is not None:
            warning = LEVEL_STYLES["warning"]
            cells = {"time": Text(), "level": Text("SKIPPED", style=f"bold #000000 on {warning}"),
                     "project": Text(), "kind": Text(),
                     "message": cut(row.gap, warning),
                     "count": Text()}
        else:
            cells = {
                "time": Text(_local_time(row), style="dim"), "level": _level_text(row.level),
                "project": cut(self._project_name(row.project_id), PROJECT_STYLE),
                "kind": cut(row.kind, TYPE_STYLE), "message": cut(row.message),
                "count": Text(f"\u00d7{row.count}" if row.fingerprint else "",
                              style=REPEAT_STYLE if row.count > 1 else "dim"),
            }
        keys = [key for key, _, _ in self._built[0]] + ["message", "count"]
        return tuple(cells[key] for key in keys)

    def _project_name(self, project_id: str) -> str:
        return self.project_names.get(project_id) or project_id[:8]

    def _rebuild_rows(self, selected: LogRow | None = None) -> None:
        """Fill the table again (new filter, new columns), keeping the selected row.

        ``DataTable.clear`` puts the cursor on row 0: without taking the selection along, a
        resize or a filter edit while not following left it there, and the next ``j`` went to
        row 1 instead of one below the row the user had chosen.
        """
        table = self.query_one("#table", DataTable)
        selected = selected or self._selected_row()
        unshown = {id(r) for r in self._unshown}
        table.clear()
        self._shown = []
        self._show(r for r in self.book.rows if id(r) not in unshown)
        if self.follow or selected is None or not self._shown:
            return
        # The selected row, or (filtered out now) the last shown row that came before it.
        order = {id(r): n for n, r in enumerate(self.book.rows)}
        position = order.get(id(selected), -1)
        index = 0
        for n, row in enumerate(self._shown):
            if order.get(id(row), -1) <= position:
                index = n
        table.move_cursor(row=index, animate=False)

    def _selected_row(self) -> LogRow | None:
        index = self.query_one("#table", DataTable).cursor_row
        return self._shown[index] if 0 <= index < len(self._shown) else None

    # -- the pattern view -------------------------------------------------------------------

    def _selected_pattern(self) -> Pattern | None:
        index = self.query_one("#patterns", DataTable).cursor_row
        return self._pattern_rows[index] if 0 <= index < len(self._pattern_rows) else None

    def _refresh_patterns(self, force: bool = False, selected: Pattern | None = None) -> None:
        """Draw the patterns again if the miner saw messages since the last time."""
        if self._mined == self._patterns_drawn and not force:
            return
        self._patterns_drawn = self._mined
        table = self.query_one("#patterns", DataTable)
        needle = self.filter_text.lower()
        ranked = [p for p in self.miner.top() if not needle or needle in p.template.lower()]
        ranked = ranked[:PATTERN_ROWS]
        selected = selected or self._selected_pattern()
        if [id(p) for p in ranked] == [id(p) for p in self._pattern_rows] and not force:
            # Same patterns in the same order: update the cells, the cursor stays put.
            for pattern in ranked:
                for key, cell in zip(("count", "last_seen", "level", "template"),
                                     self._pattern_cells(pattern), strict=True):
                    table.update_cell(str(id(pattern)), key, cell)
            self._show_selected_pattern()
            return
        table.clear()
        self._pattern_rows = ranked
        for pattern in ranked:
            table.add_row(*self._pattern_cells(pattern), key=str(id(pattern)))
        if selected is not None and selected in ranked:
            table.move_cursor(row=ranked.index(selected), animate=False)

    def _pattern_cells(self, pattern: Pattern) -> tuple[Text, ...]:
        when = parse_time(pattern.last_seen)
        level = max(pattern.levels, key=lambda lv: pattern.levels[lv]) if pattern.levels else ""
        return (Text(f"\u00d7{pattern.count}", style=REPEAT_STYLE if pattern.count > 1 else "dim"),
                Text(when.astimezone().strftime("%H:%M:%S") if when else "", style="dim"),
                _level_text(level), cut(pattern.template))

    def _show_selected_pattern(self) -> None:
        pattern = self._selected_pattern()
        if pattern is not None:
            self.query_one("#detail", DetailPane).show_content(_pattern_detail(pattern))

    # -- status and rate --------------------------------------------------------------------

    def _tick(self) -> None:
        if not self.is_running:
            # Shutting down: the timers still fire while the screen's widgets are removed,
            # and a query then fails (a traceback on quit, seen under load).
            return
        # Resize events reach the screen, not the app: checking twice a second is enough.
        self._fit_to_width()
        self._update_rate()
        self._refresh_status()

    def _update_rate(self) -> None:
        series = self.book.rate.series()
        spark = self.query_one("#sparkline", Sparkline)
        if list(spark.data or []) != series:
            spark.data = series
        peak = Text.assemble(("  peak ", "dim"),
                             (str(max(series)), LEVEL_STYLES["error"] if max(series) else "dim"),
                             ("  now ", "dim"), (str(series[-1]), "bold"))
        if peak.plain != self._peak:
            self._peak = peak.plain
            self.query_one("#rate-peak", Static).update(peak)

    def _refresh_status(self) -> None:
        status = Text()
        state = self.connection.state
        if self.fatal is not None:
            status.append(" ✖ stopped ", style="bold #ffffff on #d70000")
        elif state == "connected":
            status.append(" ● live ", style="bold #000000 on #5fd75f")
        elif state == "connecting":
            status.append(" ◌ connecting… ", style="bold #000000 on #ffaf00")
        else:
            wait = max(0, round((self.connection.retry_at or 0) - time.monotonic()))
            status.append(f" ↻ reconnecting in {wait}s ", style="bold #000000 on #ffaf00")
        if self.scope:
            status.append(f"  {self.scope}", style=f"bold {PROJECT_STYLE}")
        errors = self.book.errors
        status.append(f"  {errors} error{'s' if errors != 1 else ''}",
                      style=LEVEL_STYLES["error"] if errors else "dim")
        if not self.errors_only:
            status.append(f" · {len(self.book.rows)} logs", style="dim")
        if self.showing_patterns:
            count = len(self.miner.patterns)
            status.append(f"  {count} pattern{'s' if count != 1 else ''}",
                          style=f"bold {PROJECT_STYLE}")
        if self.filter_text:
            status.append(f"  filter “{self.filter_text}”", style=f"bold {PROJECT_STYLE}")
        if self.paused:
            status.append(f"  ⏸ paused · {len(self._unshown)} new ",
                          style="bold #ffffff on #005fd7")
        if state == "waiting" and self.connection.error and self.fatal is None:
            status.append(f"  {self.connection.error}", style=LEVEL_STYLES["warning"])
        if status.plain != self._status.plain or status.spans != self._status.spans:
            self._status = status
            self.query_one("#status", StatusLine).update(status)

    # -- keys -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # False hides the key from the footer and makes it do nothing: at 80 columns the footer
        # has room only for the keys that work in what is on screen.
        if self.detail_full:
            return action not in self._NOT_IN_FULL_DETAIL
        return not (self.showing_patterns and action in self._TABLE_ONLY)

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self._show(self._take_unshown())
            if self.showing_patterns:
                self._refresh_patterns()
        self._refresh_status()

    def _current_table(self) -> DataTable[Any]:
        return self.query_one("#patterns" if self.showing_patterns else "#table", DataTable)

    def action_cursor(self, step: int) -> None:
        table = self._current_table()
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + step)))

    def action_toggle_detail(self) -> None:
        """The detail pane (the stack trace) gets the whole screen, or gives it back."""
        self.detail_full = not self.detail_full
        self.set_class(self.detail_full, "-detail-full")
        if self.detail_full:
            self.query_one("#detail", DetailPane).focus()
        else:
            self._current_table().focus()
        self.refresh_bindings()

    def action_toggle_patterns(self) -> None:
        """Swap the table of logs for the table of their patterns, and back."""
        self.showing_patterns = not self.showing_patterns
        self.query_one("#table", DataTable).display = not self.showing_patterns
        self.query_one("#patterns", DataTable).display = self.showing_patterns
        if self.showing_patterns:
            self._refresh_patterns(force=True)
            self._show_selected_pattern()
        else:
            row = self._selected_row()
            self.query_one("#detail", DetailPane).show(
                row, self._project_name(row.project_id) if row else "")
        if not self.detail_full:
            self._current_table().focus()
        self.refresh_bindings()
        self._refresh_status()

    def action_escape(self) -> None:
        """Back out of what is open: the full-screen detail, the focused detail, the filter."""
        if self.detail_full:
            self.action_toggle_detail()
        elif self.query_one("#detail", DetailPane).has_focus:
            self._current_table().focus()
        else:
            self.action_clear_filter()

    def action_follow(self) -> None:
        table = self.query_one("#table", DataTable)
        self.follow = True
        if table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def action_next_error(self) -> None:
        table = self.query_one("#table", DataTable)
        count = len(self._shown)
        if not count:
            return
        start = table.cursor_row
        for step in range(1, count + 1):
            index = (start + step) % count
            if self._shown[index].is_error:
                table.move_cursor(row=index)
                if index <= start:
                    self.notify("wrapped: back to the first error", timeout=3)
                return
        self.notify("no error in the table", severity="warning", timeout=2)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self._apply_filter("")
        self._current_table().focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._apply_filter(event.value.strip())

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#filter", Input).display = False
        self._current_table().focus()

    def _apply_filter(self, text: str) -> None:
        if text != self.filter_text:
            self.filter_text = text
            self._rebuild_rows()
            if self.showing_patterns:
                self._refresh_patterns(force=True)
            self._refresh_status()

    @on(DataTable.RowHighlighted, "#table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not self.is_running:
            return  # a highlight still queued when the app quit: its widgets are gone
        # The cursor as it is now, not the event's row: events queue behind rows that arrived
        # since, and a stale one would turn following off (or show the wrong detail).
        table = event.data_table
        self.follow = table.cursor_row == table.row_count - 1
        if not self.showing_patterns:
            row = self._selected_row()
            self.query_one("#detail", DetailPane).show(
                row, self._project_name(row.project_id) if row else "")

    @on(DataTable.RowHighlighted, "#patterns")
    def _pattern_highlighted(self) -> None:
        if self.is_running:
            self._show_selected_pattern()


def _as_dict(event: ServerEvent) -> dict[str, Any]:
    try:
        data = event.json()
    except ValueError:
        return {"message": event.data}
    return data if isinstance(data, dict) else {"message": str(data)}

