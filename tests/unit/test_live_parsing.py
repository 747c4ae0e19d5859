"""Pure parts of the live feature: the SSE line protocol, `--since`, the TUI's row book."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger.cli.tail import since_cursor
from ledger.errors import InvalidInputError
from ledger.sse_client import ServerEvent, _Parser
from ledger.tui.rows import ErrorRate, RowBook


def feed(parser: _Parser, text: str) -> list[ServerEvent]:
    events = [parser.feed(line) for line in text.split("\n")]
    return [e for e in events if e is not None]


def test_the_parser_follows_the_event_stream_rules() -> None:
    parser = _Parser()
    events = feed(parser, "retry: 1500\n: a comment\nid: 7-0\nevent: error_notification\n"
                          "data: {\"a\":\ndata: 1}\n\ndata:plain\n\nid: 8-0\n\n")
    assert events == [ServerEvent("error_notification", '{"a":\n1}', "7-0"),
                      ServerEvent("message", "plain", "7-0")]
    assert parser.retry_ms == 1500
    assert parser.last_id == "8-0"  # an id without data still moves the position


def test_since_is_a_duration_or_a_time() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert since_cursor("10m", now) == f"{int(now.timestamp() * 1000) - 600_000}-0"
    hour_ago = f"{int(now.timestamp() * 1000) - 3_600_000}-0"
    assert since_cursor("2024-05-01T11:00:00Z", now) == hour_ago
    with pytest.raises(InvalidInputError, match="--since 'lately'"):
        since_cursor("lately", now)


def test_rows_count_fingerprints_and_errors_and_keep_a_bounded_history() -> None:
    book = RowBook(limit=3)
    first, dropped = book.add_event("1-0", {"level": "error", "error_fingerprint": "f"})
    assert (first.count, dropped) == (1, None)
    second, _ = book.add_event("2-0", {"level": "info", "message": "hi\nthere"})
    assert second.message == "hi" and not second.is_error
    third, _ = book.add_event("3-0", {"level": "warning", "log_type": "exception",
                                      "error_fingerprint": "f"})
    assert third.count == 2 and third.is_error
    gap, dropped = book.add_gap({"count": 4, "reason": "slow_client"})
    assert dropped is first and "4 event(s) skipped" in gap.message
    assert book.errors == 2 and len(book.rows) == 3
    assert third.matches("EXCEPTION") and third.matches("warn") and not third.matches("db")


def test_the_error_rate_is_per_minute_over_the_last_hour() -> None:
    rate = ErrorRate(minutes=3)
    for at in (0.0, 30.0, 70.0, 200.0):
        rate.add(at, now=200.0)
    # Minutes 0, 0, 1 and 3: minute 0 has left the three-minute window.
    assert rate.series(now=200.0) == [1, 0, 1]
    assert rate.series(now=130.0) == [0, 1, 0]
    rate.add(500.0, now=230.0)  # a clock ahead of ours: counted now, not in a future minute
    assert rate.series(now=230.0) == [1, 0, 2]


def test_an_exception_row_shows_its_type_and_error_rather_than_the_logging_message() -> None:
    book = RowBook()
    logged, _ = book.add_event("1-0", {
        "level": "error", "log_type": "exception", "error_type": "ZeroDivisionError",
        "error_message": "division by zero", "message": "Unhandled exception in request han"})
    assert logged.message == "ZeroDivisionError: division by zero"
    bare, _ = book.add_event("2-0", {"level": "error", "error_type": "Timeout", "message": "slow"})
    assert bare.message == "Timeout: slow"
    plain, _ = book.add_event("3-0", {"level": "error", "message": "disk full\nmore"})
    assert plain.message == "disk full"
