"""Query parameters, periods, cursors and SQL of log and error-group reads (pure functions)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ledger.core import error_groups, log_search
from ledger.core.log_search import parse_log_query, period_window
from ledger.errors import InvalidInputError

PROJECT = "0190a1b2-0000-7000-8000-000000000001"
# A Wednesday in the middle of a month.
NOW = datetime(2024, 5, 15, 10, 30, tzinfo=UTC)


def parse(params: dict[str, str], **kw: object) -> log_search.LogQuery:
    return parse_log_query(params, project_id=PROJECT, retention_days=90, now=NOW, **kw)  # type: ignore[arg-type]


def rejects(params: dict[str, str], match: str, **kw: object) -> None:
    with pytest.raises(InvalidInputError, match=match):
        parse(params, **kw)


# -- periods ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("period", "start", "end"), [
    ("today", datetime(2024, 5, 15, tzinfo=UTC), datetime(2024, 5, 16, tzinfo=UTC)),
    ("currentWeek", datetime(2024, 5, 13, tzinfo=UTC), datetime(2024, 5, 20, tzinfo=UTC)),
    ("currentMonth", datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)),
    ("currentYear", datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
    ("last1h", NOW - timedelta(hours=1), NOW + log_search.FUTURE_SKEW),
    ("last24h", NOW - timedelta(days=1), NOW + log_search.FUTURE_SKEW),
    ("last7days", NOW - timedelta(days=7), NOW + log_search.FUTURE_SKEW),
    ("last30days", NOW - timedelta(days=30), NOW + log_search.FUTURE_SKEW),
])
def test_period_presets(period: str, start: datetime, end: datetime) -> None:
    assert period_window(period, NOW) == (start, end)
    query = parse({"period": period})
    assert (query.start, query.end) == (start, end)


def test_current_month_in_december_ends_next_year() -> None:
    assert period_window("currentMonth", datetime(2024, 12, 31, 23, 59, tzinfo=UTC)) == (
        datetime(2024, 12, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))


def test_week_starts_on_monday_even_on_sunday() -> None:
    sunday = datetime(2024, 5, 19, 23, 0, tzinfo=UTC)
    assert period_window("currentWeek", sunday)[0] == datetime(2024, 5, 13, tzinfo=UTC)


def test_no_period_means_the_retention_window() -> None:
    query = parse({})
    assert query.start == NOW - timedelta(days=90)
    assert query.end == NOW + log_search.FUTURE_SKEW


def test_explicit_window_accepts_z_offsets_and_naive_utc() -> None:
    query = parse({"periodFrom": "2024-05-01T00:00:00Z", "periodTo": "2024-05-02T02:00:00+02:00"})
    assert query.start == datetime(2024, 5, 1, tzinfo=UTC)
    assert query.end == datetime(2024, 5, 2, tzinfo=UTC)
    assert parse({"periodFrom": "2024-05-10T08:00:00"}).start == datetime(2024, 5, 10, 8,
                                                                          tzinfo=UTC)


@pytest.mark.parametrize(("params", "match"), [
    ({"period": "yesterday"}, "period must be one of"),
    ({"period": "today", "periodFrom": "2024-05-01"}, "either period or periodFrom"),
    ({"periodFrom": "last tuesday"}, "periodFrom must be an ISO-8601"),
    ({"periodTo": "2024-13-01"}, "periodTo must be an ISO-8601"),
    ({"periodFrom": "2024-05-02", "periodTo": "2024-05-01"}, "earlier than periodTo"),
])
def test_bad_windows_name_the_parameter(params: dict[str, str], match: str) -> None:
    rejects(params, match)


# -- filters and paging -------------------------------------------------------------------------


def test_filters_are_parsed_and_deduplicated() -> None:
    query = parse({"level": "error, critical,error", "log_type": "exception",
                   "environment": "prod,staging", "release": "1.2.3",
                   "error_fingerprint": "abc", "search": " x ", "limit": "10", "offset": "20"})
    assert query.levels == ("error", "critical")
    assert query.log_types == ("exception",)
    assert query.environments == ("prod", "staging")
    assert query.releases == ("1.2.3",)
    assert query.error_fingerprint == "abc"
    assert query.search == " x "  # searched as typed: spaces can matter
    assert (query.limit, query.offset) == (10, 20)


@pytest.mark.parametrize(("params", "match"), [
    ({"level": "fatal"}, "level must be one or more"),
    ({"log_type": "metric"}, "log_type must be one or more"),
    ({"limit": "0"}, "limit must be between 1 and 1000"),
    ({"limit": "1001"}, "limit must be between 1 and 1000"),
    ({"limit": "ten"}, "limit must be a whole number"),
    ({"offset": "-1"}, "offset must be between"),
    ({"offset": "100001"}, "cursor"),
    ({"search": "x" * 201}, "search is at most 200"),
    ({"search": "a\x00b"}, "search must not contain NUL"),
    ({"environment": "a" * 21}, "environment values are at most 20"),
    ({"error_fingerprint": "f" * 129}, "error_fingerprint is at most 128"),
    ({"levels": "error"}, "unknown query parameter 'levels'"),
])
def test_bad_parameters_are_400_naming_them(params: dict[str, str], match: str) -> None:
    rejects(params, match)


def test_errors_list_is_error_and_critical_only() -> None:
    assert parse({}, errors_only=True).levels == ("error", "critical")
    assert parse({"level": "critical"}, errors_only=True).levels == ("critical",)
    rejects({"level": "info"}, "error or critical", errors_only=True)


def test_blank_search_is_no_search() -> None:
    assert parse({"search": "   "}).search is None


# -- cursor -------------------------------------------------------------------------------------


def test_cursor_round_trip_and_binding_to_filters() -> None:
    first = parse({"level": "error"})
    ts = datetime(2024, 5, 15, 9, 0, 0, 123456, tzinfo=UTC)
    token = log_search.encode_cursor(ts, "0190a1b2-0000-7000-8000-00000000abcd", first.digest)
    assert "=" not in token and "/" not in token and "+" not in token
    nxt = parse({"level": "error", "cursor": token})
    assert nxt.cursor == log_search.Cursor(ts, "0190a1b2-0000-7000-8000-00000000abcd",
                                           first.digest)
    rejects({"level": "critical", "cursor": token}, "cursor belongs to a query with other")
    rejects({"level": "error", "cursor": token, "offset": "5"}, "either offset or cursor")


@pytest.mark.parametrize("token", [
    "garbage", "%%%", "", base64.urlsafe_b64encode(b"[1,2]").decode(),
    base64.urlsafe_b64encode(orjson.dumps({"v": 1, "t": "2024-05-01T00:00:00",
                                           "i": "x", "q": ""})).decode(),
    base64.urlsafe_b64encode(orjson.dumps({"v": 9, "t": "2024-05-01T00:00:00+00:00",
                                           "i": PROJECT, "q": ""})).decode(),
    "ü" * 8,
])
def test_bad_cursor_is_400(token: str) -> None:
    with pytest.raises(InvalidInputError, match="cursor is not valid"):
        log_search.decode_cursor(token)


# -- SQL ----------------------------------------------------------------------------------------


def test_like_metacharacters_are_escaped() -> None:
    assert log_search.like_pattern(r"100%_done\ok") == r"%100\%\_done\\ok%"


def test_page_sql_is_bound_by_project_and_window_and_inlines_enums_only() -> None:
    query = parse({"level": "error,critical", "release": "1'; DROP TABLE logs; --",
                   "search": "o'brien"})
    statement, args = log_search.build_page_sql(query)
    text = statement.as_string(None)
    assert "project_id = %s AND timestamp >= %s AND timestamp < %s" in text
    # Enum values are literals (the partial error index can be proved); user text never is.
    assert "\"level\" IN ('error', 'critical')" in text
    assert "DROP" not in text and "brien" not in text
    assert args[:3] == [PROJECT, query.start, query.end]
    assert "1'; DROP TABLE logs; --" in args
    assert args[-2:] == [101, 0]  # one extra row tells whether there is more


def test_cursor_adds_a_prunable_bound() -> None:
    first = parse({})
    ts = datetime(2024, 5, 1, tzinfo=UTC)
    token = log_search.encode_cursor(ts, PROJECT, first.digest)
    statement, _ = log_search.build_page_sql(parse({"cursor": token}))
    assert "timestamp <= %s AND (timestamp, id) < (%s, %s::uuid)" in statement.as_string(None)
    count, count_args = log_search.build_count_sql(parse({"cursor": token}))
    assert "(timestamp, id)" not in count.as_string(None)  # the total ignores the cursor
    assert count_args[-1] == log_search.TOTAL_CAP + 1


# -- error groups -------------------------------------------------------------------------------


def test_group_query_parameters() -> None:
    query = error_groups.parse_group_query({"status": "unresolved,ignored", "sort": "count",
                                            "limit": "5"}, project_id=PROJECT)
    assert query.statuses == ("unresolved", "ignored")
    assert (query.sort, query.limit) == ("count", 5)
    with pytest.raises(InvalidInputError, match="sort must be one of"):
        error_groups.parse_group_query({"sort": "newest"}, project_id=PROJECT)
    with pytest.raises(InvalidInputError, match="status must be one or more"):
        error_groups.parse_group_query({"status": "open"}, project_id=PROJECT)


def test_status_change_rules() -> None:
    assert error_groups.check_status_change("resolved", " 1.2.0 ") == "1.2.0"
    assert error_groups.check_status_change("ignored", None) is None
    with pytest.raises(InvalidInputError, match="status must be one of"):
        error_groups.check_status_change("closed", None)
    with pytest.raises(InvalidInputError, match="only allowed with status 'resolved'"):
        error_groups.check_status_change("ignored", "1.0")


@pytest.mark.parametrize(("components", "expected"), [
    ({"method": "stacktrace", "error_type": "KeyError", "frames": ["app.py:main", "db.py:get"],
      "in_app": True}, "KeyError raised through app.py:main → db.py:get; in-app frames"),
    ({"method": "type_message", "error_type": "ValueError", "message": "bad <num>"},
     "Same error type and normalised message: ValueError: bad <num>"),
    ({"method": "message", "message": "timeout after <duration>"},
     "Same normalised message: timeout after <duration>"),
    ({"method": "client", "client": ["checkout", "{{ default }}"]},
     "The client sent the fingerprint [checkout, {{ default }}]"),
])
def test_why_grouped_explanations(components: dict[str, object], expected: str) -> None:
    assert expected in error_groups.explain(components, 1)
