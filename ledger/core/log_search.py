"""Reading logs back: query parameters -> validated ``LogQuery`` -> SQL -> one page (DESIGN §5).

The REST parameters arrive untouched (the gateway forwards them) and are checked here, once, so
that every error names the parameter the caller sent. Rules that keep reads cheap on a table of
many millions of rows:

* Every query is bound by one project and a time window: the window prunes monthly partitions
  and the ``(project_id, timestamp DESC)`` index serves the order. With no period the window is
  the project's retention.
* Paging is keyset on ``(timestamp DESC, id DESC)``: a ``cursor`` encodes the last row seen, so a
  walk has no gaps or repeats while new logs arrive. ``offset`` is kept for simple clients.
* ``total`` is a count capped at ``TOTAL_CAP``: exact below it, ``total_exact=False`` above it.
  A page that holds every match proves the total without counting. The query daemon runs the
  count beside the page, waits for it only briefly (a lower bound otherwise), and caches it so
  that later pages of one walk do not count again.
* ``search`` is an ``ILIKE`` with ``%``, ``_`` and ``\\`` escaped, over message and error fields,
  inside that window: no text index over all logs (it would slow COPY several times).

Pure functions up to ``build_*``; ``fetch_*`` run them on a psycopg connection.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ledger.core import id_prefixes
from ledger.errors import InvalidInputError, NotFoundError

LEVELS = ("debug", "info", "warning", "error", "critical")
ERROR_LEVELS = ("error", "critical")
LOG_TYPES = ("console", "logger", "exception", "network", "database", "endpoint", "custom")
#: DESIGN §5 presets, plus two rolling windows that dashboards and `ledger logs` want.
PERIODS = ("today", "last1h", "last24h", "last7days", "last30days", "currentWeek",
           "currentMonth", "currentYear")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: Deep offsets make PostgreSQL read and drop every skipped row; past this, use the cursor.
MAX_OFFSET = 100_000
#: ``total`` counts at most this many rows; above it the answer says ``total_exact=False``.
TOTAL_CAP = 10_000
MAX_SEARCH_CHARS = 200
MAX_VALUES = 20
#: Ingest accepts timestamps up to 5 minutes ahead (DESIGN §3): windows ending "now" include them.
FUTURE_SKEW = timedelta(minutes=5)

#: Parameters that select rows (their values make the cursor's fingerprint).
FILTER_PARAMS = ("period", "periodFrom", "periodTo", "level", "log_type", "environment",
                 "release", "error_fingerprint", "search")
PAGING_PARAMS = ("limit", "offset", "cursor")
PARAMS = (*FILTER_PARAMS, *PAGING_PARAMS)

_CURSOR_VERSION = 1


@dataclass(frozen=True)
class Cursor:
    """The last row of a page: the next page starts strictly after it."""

    timestamp: datetime
    id: str
    #: Fingerprint of the filters the cursor was made for (a cursor is not portable).
    digest: str


@dataclass(frozen=True)
class LogQuery:
    """A validated read of one project's logs."""

    project_id: str
    start: datetime
    end: datetime  # exclusive
    levels: tuple[str, ...] = ()
    log_types: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    releases: tuple[str, ...] = ()
    error_fingerprint: str | None = None
    search: str | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    cursor: Cursor | None = None
    #: Digest of the filter parameters as sent: the cursor and the cached total are keyed by it.
    digest: str = ""


@dataclass
class LogPage:
    """One page: rows as JSON, the total (maybe capped) and where the next page starts."""

    logs_json: bytes
    count: int
    has_more: bool
    next_cursor: str | None
    total: int | None = None
    total_exact: bool = True


# -- parameters ---------------------------------------------------------------------------------


def _one(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int,
              hint: str = "") -> int:
    """Parameter ``name`` as a whole number in ``[low, high]`` (``default`` when absent)."""
    raw = _one(params, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise InvalidInputError(f"{name} must be between {low} and {high}, got {value}{hint}")
    return value


def check_known_params(params: Mapping[str, str], known: Sequence[str]) -> None:
    """Refuse a parameter outside ``known`` (and ``project_id``), naming it and the known ones.

    Raises:
        InvalidInputError: the first unknown parameter, alphabetically.
    """
    unknown = sorted(set(params) - set(known) - {"project_id"})
    if unknown:
        raise InvalidInputError(
            f"unknown query parameter {unknown[0]!r}; known: project_id, {', '.join(known)}"
        )


def choices_param(params: Mapping[str, str], name: str,
                  allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated values of ``name``, each one of ``allowed``."""
    values = list_param(params, name)
    bad = [v for v in values if v not in allowed]
    if bad:
        raise InvalidInputError(
            f"{name} must be one or more (comma-separated) of {', '.join(allowed)}; got {bad[0]!r}"
        )
    return values


def list_param(params: Mapping[str, str], name: str, max_chars: int = 200) -> tuple[str, ...]:
    """Comma-separated, de-duplicated values of ``name`` (empty when absent)."""
    raw = _one(params, name)
    if raw is None:
        return ()
    values = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
    if len(values) > MAX_VALUES:
        raise InvalidInputError(f"{name} takes at most {MAX_VALUES} comma-separated values")
    for value in values:
        if len(value) > max_chars:
            raise InvalidInputError(f"{name} values are at most {max_chars} characters")
        check_text(name, value)
    return values


def check_text(name: str, value: str) -> None:
    """Refuse text that PostgreSQL cannot store, naming the parameter."""
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the driver.
    if "\x00" in value:
        raise InvalidInputError(f"{name} must not contain NUL characters")


def parse_timestamp(name: str, raw: str) -> datetime:
    """An ISO-8601 timestamp (``Z`` or an offset; none means UTC), or a 400 naming ``name``."""
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{name} must be an ISO-8601 timestamp such as 2024-05-01T12:00:00Z, got {raw!r}"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def period_window(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The ``[start, end)`` of a preset, in UTC. Calendar presets end at the period's end.

    Args:
        period: One of ``PERIODS``.
        now: The current time (aware).

    Returns:
        Start (inclusive) and end (exclusive).
    """
    now = now.astimezone(UTC)
    today = now.date()
    rolling = {"last1h": timedelta(hours=1), "last24h": timedelta(hours=24),
               "last7days": timedelta(days=7), "last30days": timedelta(days=30)}
    if period in rolling:
        return now - rolling[period], now + FUTURE_SKEW
    if period == "today":
        start = _midnight(today)
        return start, start + timedelta(days=1)
    if period == "currentWeek":  # ISO weeks start on Monday
        start = _midnight(today - timedelta(days=today.weekday()))
        return start, start + timedelta(days=7)
    if period == "currentMonth":
        start = _midnight(today.replace(day=1))
        following = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
        return start, _midnight(following)
    if period == "currentYear":
        return _midnight(date(today.year, 1, 1)), _midnight(date(today.year + 1, 1, 1))
    raise InvalidInputError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")


def time_window(params: Mapping[str, str], now: datetime,
                retention_days: int) -> tuple[datetime, datetime]:
    """The window of a query: a ``period``, ``periodFrom``/``periodTo``, or the retention."""
    period = _one(params, "period")
    raw_from = _one(params, "periodFrom")
    raw_to = _one(params, "periodTo")
    if period is not None:
        if raw_from is not None or raw_to is not None:
            raise InvalidInputError("give either period or periodFrom/periodTo, not both")
        return period_window(period, now)
    default_start = now - timedelta(days=max(retention_days, 1))
    start = parse_timestamp("periodFrom", raw_from) if raw_from else default_start
    end = parse_timestamp("periodTo", raw_to) if raw_to else now + FUTURE_SKEW
    if start >= end:
        raise InvalidInputError("periodFrom must be earlier than periodTo")
    return start, end


def filter_digest(params: Mapping[str, str], errors_only: bool = False) -> str:
    """A short fingerprint of the row-selecting parameters as sent (cursor and cache key)."""
    parts = [(name, _one(params, name) or "") for name in FILTER_PARAMS]
    payload = orjson.dumps([errors_only, parts])
    return hashlib.sha256(payload).hexdigest()[:16]


def parse_log_query(
    params: Mapping[str, str],
    *,
    project_id: str,
    retention_days: int,
    now: datetime | None = None,
    errors_only: bool = False,
) -> LogQuery:
    """Validate REST parameters into a ``LogQuery``; ``InvalidInputError`` names the bad one.

    Args:
        params: Query parameters as sent (``level=error,critical`` lists are comma-separated).
        project_id: The project the caller may read (already checked by the gateway).
        retention_days: The project's retention: the default window without a period.
        now: The current time; tests pass a fixed one.
        errors_only: ``GET /errors/list``: only ``error`` and ``critical`` logs.

    Returns:
        The validated query.
    """
    check_known_params(params, PARAMS)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    start, end = time_window(params, now, retention_days)
    levels = choices_param(params, "level", LEVELS)
    if errors_only:
        outside = [lv for lv in levels if lv not in ERROR_LEVELS]
        if outside:
            raise InvalidInputError(
                f"level must be error or critical on the errors list, got {outside[0]!r}"
            )
        levels = levels or ERROR_LEVELS
    fingerprint = _one(params, "error_fingerprint")
    if fingerprint is not None:
        if len(fingerprint) > 128:
            raise InvalidInputError("error_fingerprint is at most 128 characters")
        check_text("error_fingerprint", fingerprint)
    search = params.get("search")
    if search is not None:
        if len(search) > MAX_SEARCH_CHARS:
            raise InvalidInputError(f"search is at most {MAX_SEARCH_CHARS} characters")
        check_text("search", search)
        search = search if search.strip() else None
    limit = int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_param(params, "offset", 0, 0, MAX_OFFSET,
                        " (page deeper with cursor=<next_cursor>)")
    digest = filter_digest(params, errors_only)
    raw_cursor = _one(params, "cursor")
    cursor = None
    if raw_cursor is not None:
        if offset:
            raise InvalidInputError("give either offset or cursor, not both")
        cursor = decode_cursor(raw_cursor)
        if cursor.digest != digest:
            raise InvalidInputError(
                "cursor belongs to a query with other filters: keep the filters of the first"
                " page, or drop cursor to start again"
            )
    return LogQuery(
        project_id=project_id, start=start, end=end, levels=levels,
        log_types=choices_param(params, "log_type", LOG_TYPES),
        environments=list_param(params, "environment", 20),
        releases=list_param(params, "release", 100),
        error_fingerprint=fingerprint, search=search, limit=limit, offset=offset,
        cursor=cursor, digest=digest,
    )


# -- cursor -------------------------------------------------------------------------------------


def encode_cursor(timestamp: datetime, log_id: str, digest: str) -> str:
    """Opaque, URL-safe cursor for the row ``(timestamp, log_id)`` of a query ``digest``."""
    ts = timestamp.astimezone(UTC).isoformat()
    payload = orjson.dumps({"v": _CURSOR_VERSION, "t": ts, "i": str(log_id), "q": digest})
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(raw: str) -> Cursor:
    """Parse a cursor made by ``encode_cursor``; anything else is a 400 naming ``cursor``."""
    problem = "cursor is not valid: pass the next_cursor of a previous page unchanged"
    try:
        padded = raw + "=" * (-len(raw) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(data, dict) or data.get("v") != _CURSOR_VERSION:
            raise ValueError("version")
        timestamp = datetime.fromisoformat(str(data["t"]))
        if timestamp.tzinfo is None:
            raise ValueError("naive")
        log_id = str(uuid.UUID(str(data["i"])))
        digest = str(data["q"])
    except (ValueError, KeyError, TypeError, UnicodeEncodeError, binascii.Error,
            orjson.JSONDecodeError):
        raise InvalidInputError(problem) from None
    return Cursor(timestamp.astimezone(UTC), log_id, digest)


# -- SQL ----------------------------------------------------------------------------------------

#: Stored columns, renamed where the public API has another name.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "id"), ("project_id", "project_id"), ("timestamp", "timestamp"),
    ("ingested_at", "ingested_at"), ("level", "level"), ("log_type", "log_type"),
    ("importance", "importance"), ("message", "message"), ("error_type", "error_type"),
    ("error_message", "error_message"), ("stack_trace", "stack_trace"),
    ("environment", "environment"), ("release", "release"), ("sdk_version", "sdk_version"),
    ("platform", "platform"), ("platform_version", "platform_version"),
    ("attributes", "attributes"), ("trace_id", "trace_id"), ("span_id", "span_id"),
    ("client_fingerprint", "fingerprint"), ("error_fingerprint", "error_fingerprint"),
    ("fingerprint_version", "fingerprint_version"),
)
SELECT_COLUMNS = sql.SQL(", ").join(
    sql.Identifier(col) if col == name else sql.SQL("{} AS {}").format(
        sql.Identifier(col), sql.Identifier(name))
    for col, name in _COLUMNS
)


def like_pattern(text: str) -> str:
    """``%text%`` with the LIKE metacharacters of ``text`` escaped (``ESCAPE '\\'``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _in(column: str, values: tuple[str, ...], *, literal: bool) -> sql.Composable:
    # Enum values (level, log_type) are inlined as literals: the planner can then prove the
    # partial index predicate `level IN ('error', 'critical')`, which a bound parameter hides.
    items = sql.SQL(", ").join(sql.Literal(v) if literal else sql.Placeholder() for v in values)
    if len(values) == 1:
        return sql.SQL("{} = {}").format(sql.Identifier(column), items)
    return sql.SQL("{} IN ({})").format(sql.Identifier(column), items)


def build_where(query: LogQuery, *, with_cursor: bool = True) -> tuple[sql.Composed, list[Any]]:
    """The WHERE clause (project, window, filters, cursor) and its parameters, in order."""
    clauses: list[sql.Composable] = [
        sql.SQL("project_id = %s"), sql.SQL("timestamp >= %s"), sql.SQL("timestamp < %s"),
    ]
    args: list[Any] = [query.project_id, query.start, query.end]
    if query.levels:
        clauses.append(_in("level", query.levels, literal=True))
    if query.log_types:
        clauses.append(_in("log_type", query.log_types, literal=True))
    if query.environments:
        clauses.append(_in("environment", query.environments, literal=False))
        args.extend(query.environments)
    if query.releases:
        clauses.append(_in("release", query.releases, literal=False))
        args.extend(query.releases)
    if query.error_fingerprint is not None:
        clauses.append(sql.SQL("error_fingerprint = %s"))
        args.append(query.error_fingerprint)
    if query.search is not None:
        clauses.append(sql.SQL(
            "(message ILIKE %s ESCAPE '\\' OR error_message ILIKE %s ESCAPE '\\'"
            " OR error_type ILIKE %s ESCAPE '\\')"
        ))
        pattern = like_pattern(query.search)
        args.extend([pattern, pattern, pattern])
    if with_cursor and query.cursor is not None:
        # The plain `timestamp <=` duplicates the row comparison so that the index range and
        # partition pruning use it; the row comparison breaks ties on id.
        clauses.append(sql.SQL("timestamp <= %s AND (timestamp, id) < (%s, %s::uuid)"))
        args.extend([query.cursor.timestamp, query.cursor.timestamp, query.cursor.id])
    return sql.SQL(" AND ").join(clauses), args


def build_page_sql(query: LogQuery) -> tuple[sql.Composed, list[Any]]:
    """SELECT of one page (``limit + 1`` rows: the extra one says whether there is more)."""
    where, args = build_where(query)
    statement = sql.SQL(
        "SELECT {columns} FROM logs WHERE {where}"
        " ORDER BY timestamp DESC, id DESC LIMIT %s OFFSET %s"
    ).format(columns=SELECT_COLUMNS, where=where)
    return statement, [*args, query.limit + 1, query.offset]


def build_count_sql(query: LogQuery, cap: int = TOTAL_CAP) -> tuple[sql.Composed, list[Any]]:
    """Rows matching the filters (without the cursor), counting at most ``cap + 1``."""
    where, args = build_where(query, with_cursor=False)
    statement = sql.SQL(
        "SELECT count(*) FROM (SELECT 1 FROM logs WHERE {where} LIMIT %s) AS matching"
    ).format(where=where)
    return statement, [*args, cap + 1]


# -- execution ----------------------------------------------------------------------------------


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("timestamp", "ingested_at"):
        value = row.get(key)
        if isinstance(value, datetime):
            row[key] = value.astimezone(UTC)
    return row


async def fetch_page(conn: psycopg.AsyncConnection[Any], query: LogQuery) -> LogPage:
    """Run the page query. ``total`` is set only when the page itself proves it."""
    statement, args = build_page_sql(query)
    async with conn.cursor(row_factory=dict_row) as cur:
        # Not prepared: a custom plan with the real window prunes partitions at plan time.
        await cur.execute(statement, args, prepare=False)
        rows = [_jsonable(r) for r in await cur.fetchall()]
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = None
    if has_more and rows:
        last = rows[-1]
        next_cursor = encode_cursor(last["timestamp"], str(last["id"]), query.digest)
    page = LogPage(logs_json=orjson.dumps(rows), count=len(rows), has_more=has_more,
                   next_cursor=next_cursor)
    if query.cursor is None and not has_more:
        page.total = query.offset + len(rows) if rows or not query.offset else None
    return page


async def count_matching(conn: psycopg.AsyncConnection[Any], query: LogQuery,
                         cap: int = TOTAL_CAP) -> tuple[int, bool]:
    """``(total, exact)``: the number of matching rows, or ``(cap, False)`` when over ``cap``."""
    statement, args = build_count_sql(query, cap)
    cur = await conn.execute(statement, args, prepare=False)
    row = await cur.fetchone()
    counted = int(row[0]) if row else 0
    return (cap, False) if counted > cap else (counted, True)


async def fetch_log(conn: psycopg.AsyncConnection[Any], project_ids: list[str],
                    log_id: str) -> dict[str, Any]:
    """One log by id among ``project_ids`` (those the caller may read), or ``NotFoundError``."""
    wanted = await id_prefixes.resolve(conn, "logs", "log", project_ids, log_id)
    statement = sql.SQL(
        "SELECT {columns} FROM logs WHERE project_id = ANY(%s::uuid[]) AND id = %s"
        " ORDER BY timestamp DESC LIMIT 1"
    ).format(columns=SELECT_COLUMNS)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, [project_ids, wanted])
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"log {wanted} not found")
    return _jsonable(row)
