"""Error groups: written by the ingest writers, read back and triaged (list, show, status).

Every rule of error groups lives here. Writing (called by the ingest writers, one row per project
and fingerprint): a group's title, the events of a batch folded per group, the upsert of their
counts and the regression rule (DESIGN §6). The rule runs inside PostgreSQL, in the UPDATE that
holds the rows' locks (a Python decision would need SELECT … FOR UPDATE and a second round
trip per batch), so its release order exists twice: ``release_cmp`` here, and the SQL function
``ledger_release_cmp`` (migration logs/0004) that the UPDATE calls. ``reopens`` is the rule in
Python, for the alerts evaluator that predicts what the writer did; a test holds the two
orders equal.

Reading: groups are listed per project (by last seen or by event count), shown with an
explanation built from the fingerprint components (DESIGN §6), and moved between
``unresolved``, ``resolved`` (optionally "in release X": older releases then do not reopen it)
and ``ignored``.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ledger.core import id_prefixes, log_search
from ledger.errors import InvalidInputError, NotFoundError

STATUSES = ("unresolved", "resolved", "ignored")
SORTS = {
    "last_seen": sql.SQL("last_seen DESC, id DESC"),
    "count": sql.SQL("event_count DESC, last_seen DESC, id DESC"),
    "first_seen": sql.SQL("first_seen DESC, id DESC"),
}
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_OFFSET = 100_000
MAX_RELEASE_CHARS = 100
PARAMS = ("status", "sort", "search", "limit", "offset")

_COLUMNS = sql.SQL(
    "id, project_id, fingerprint, fingerprint_version, components, title, error_type, level,"
    " log_type, first_seen, last_seen, event_count, status, resolved_in_release, resolved_at,"
    " last_release, sample_log_id, updated_at, merged_into"
)


@dataclass(frozen=True)
class GroupQuery:
    """A validated listing of one project's error groups."""

    project_id: str
    statuses: tuple[str, ...] = ()
    sort: str = "last_seen"
    search: str | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def parse_group_query(params: Mapping[str, str], *, project_id: str) -> GroupQuery:
    """Validate ``GET /error-groups`` parameters; ``InvalidInputError`` names the bad one.

    Args:
        params: Query parameters as sent (``status`` may be comma-separated).
        project_id: The project the caller may read.

    Returns:
        The validated query.
    """
    log_search.check_known_params(params, PARAMS)
    statuses = log_search.choices_param(params, "status", STATUSES)
    sort = (params.get("sort") or "last_seen").strip()
    if sort not in SORTS:
        raise InvalidInputError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    search = params.get("search")
    if search is not None:
        if len(search) > log_search.MAX_SEARCH_CHARS:
            raise InvalidInputError(
                f"search is at most {log_search.MAX_SEARCH_CHARS} characters")
        log_search.check_text("search", search)
        search = search if search.strip() else None
    return GroupQuery(
        project_id=project_id, statuses=statuses, sort=sort, search=search,
        limit=log_search.int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=log_search.int_param(params, "offset", 0, 0, MAX_OFFSET),
    )


def _where(query: GroupQuery) -> tuple[sql.Composed, list[Any]]:
    # A group merged into another is shown through the one that survives.
    clauses: list[sql.Composable] = [sql.SQL("project_id = %s AND merged_into IS NULL")]
    args: list[Any] = [query.project_id]
    if query.statuses:
        clauses.append(sql.SQL("status = ANY(%s)"))
        args.append(list(query.statuses))
    if query.search is not None:
        clauses.append(sql.SQL("(title ILIKE %s ESCAPE '\\' OR error_type ILIKE %s ESCAPE '\\')"))
        pattern = log_search.like_pattern(query.search)
        args.extend([pattern, pattern])
    return sql.SQL(" AND ").join(clauses), args


def build_list_sql(query: GroupQuery) -> tuple[sql.Composed, list[Any]]:
    """SELECT of one page of groups (``limit + 1`` rows) plus the exact total per row.

    Groups are few next to logs (one per distinct error), so an exact ``count(*) OVER ()`` is
    cheap here, unlike on ``logs``.
    """
    where, args = _where(query)
    statement = sql.SQL(
        "SELECT {columns}, count(*) OVER () AS total FROM error_groups WHERE {where}"
        " ORDER BY {order} LIMIT %s OFFSET %s"
    ).format(columns=_COLUMNS, where=where, order=SORTS[query.sort])
    return statement, [*args, query.limit + 1, query.offset]


def build_count_sql(query: GroupQuery) -> tuple[sql.Composed, list[Any]]:
    """How many groups match (for a page past the end, where the window count is absent)."""
    where, args = _where(query)
    return sql.SQL("SELECT count(*) FROM error_groups WHERE {where}").format(where=where), args


def explain(components: Mapping[str, Any], version: int | None = None) -> str:
    """One sentence saying why the events of a group were grouped (from its components).

    Args:
        components: The fingerprint components stored with the group.
        version: The fingerprint algorithm version.

    Returns:
        A human-readable explanation.
    """
    method = components.get("method")
    suffix = f" (fingerprint v{version})" if version is not None else ""
    error_type = components.get("error_type")
    if method == "stacktrace" and isinstance(components.get("exceptions"), list):
        return _explain_chain(components["exceptions"], error_type, suffix)
    if method == "stacktrace":
        frames = [str(f) for f in components.get("frames") or []]
        where = " → ".join(frames) if frames else "the same frames"
        kind = "in-app frames" if components.get("in_app") else "frames (no in-app frame found)"
        what = f"{error_type} raised" if error_type else "raised"
        return (f"Same stack trace: {what} through {where}; {kind}, line numbers"
                f" ignored{suffix}.")
    if method == "type_message":
        return (f"Same error type and normalised message: {error_type}:"
                f" {components.get('message', '')!s}{suffix}.")
    if method == "message":
        return f"Same normalised message: {components.get('message', '')!s}{suffix}."
    if method == "client" and components.get("rule"):
        rule = components["rule"]
        return (f"The project's fingerprint rule {rule.get('matcher', '')!s} →"
                f" {', '.join(str(p) for p in components.get('client') or [])}"
                f" (rules revision {rule.get('revision', '?')!s}){suffix}.")
    if method == "client":
        client = ", ".join(str(p) for p in components.get("client") or [])
        return f"The client sent the fingerprint [{client}]{suffix}."
    return f"Same fingerprint{suffix}."


def _explain_chain(chain: list[Any], error_type: Any, suffix: str) -> str:
    parts = []
    for exc in chain:
        if not isinstance(exc, dict):
            continue
        name = exc.get("type") or "an exception"
        if exc.get("minified"):
            parts.append(f"{name} with message {exc.get('message', '')!s} (minified frames)")
            continue
        frames = " → ".join(str(f) for f in exc.get("frames") or []) or "no frames"
        kind = "" if exc.get("in_app") else " (no in-app frame found)"
        members = exc.get("members") or []
        extra = f", with {len(members)} sorted members" if members else ""
        parts.append(f"{name} through {frames}{kind}{extra}")
    what = f"{error_type} raised" if error_type else "raised"
    return (f"Same exception chain: {what}; " + "; then ".join(parts)
            + f"; line numbers and directories ignored{suffix}.")


def _group_dict(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("total", None)
    for key in ("first_seen", "last_seen", "resolved_at", "updated_at"):
        value = row.get(key)
        if isinstance(value, datetime):
            row[key] = value.astimezone(UTC)
    components = row.get("components") or {}
    row["why_grouped"] = explain(components, row.get("fingerprint_version"))
    return row


async def resolve_group_id(conn: psycopg.AsyncConnection[Any], project_ids: list[str],
                           group_id: str) -> str:
    """The whole id of the group among ``project_ids`` that ``group_id`` is or starts."""
    return await id_prefixes.resolve(conn, "error_groups", "error group", project_ids, group_id)


async def list_groups(conn: psycopg.AsyncConnection[Any],
                      query: GroupQuery) -> tuple[list[dict[str, Any]], int, bool]:
    """``(groups, total, has_more)`` for one page of a project's groups."""
    statement, args = build_list_sql(query)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, args)
        rows = await cur.fetchall()
    total = int(rows[0]["total"]) if rows else 0
    if not rows and query.offset:
        statement, args = build_count_sql(query)
        count = await conn.execute(statement, args)
        found = await count.fetchone()
        total = int(found[0]) if found else 0
    has_more = len(rows) > query.limit
    return [_group_dict(r) for r in rows[: query.limit]], total, has_more


async def get_group(conn: psycopg.AsyncConnection[Any], project_ids: list[str],
                    group_id: str) -> dict[str, Any]:
    """A group among ``project_ids`` with its explanation and sample event, or 404."""
    wanted = await resolve_group_id(conn, project_ids, group_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.SQL("SELECT {columns} FROM error_groups"
                    " WHERE id = %s AND project_id = ANY(%s::uuid[])").format(columns=_COLUMNS),
            [wanted, project_ids],
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"error group {wanted} not found")
    group = _group_dict(row)
    group["sample_log"] = None
    if group.get("sample_log_id"):
        # The sample may have fallen out of retention; the group stays meaningful without it.
        with contextlib.suppress(NotFoundError):
            group["sample_log"] = await log_search.fetch_log(
                conn, [str(group["project_id"])], str(group["sample_log_id"]))
    return group


def check_status_change(status: str, resolved_in_release: str | None) -> str | None:
    """Validate a status change; return the release to store (``None`` unless resolved)."""
    if status not in STATUSES:
        raise InvalidInputError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    release = resolved_in_release.strip() if resolved_in_release else None
    if release is None:
        return None
    if status != "resolved":
        raise InvalidInputError("resolved_in_release is only allowed with status 'resolved'")
    if len(release) > MAX_RELEASE_CHARS:
        raise InvalidInputError(
            f"resolved_in_release is at most {MAX_RELEASE_CHARS} characters")
    log_search.check_text("resolved_in_release", release)
    return release


async def set_status(conn: psycopg.AsyncConnection[Any], project_ids: list[str], group_id: str,
                     status: str, resolved_in_release: str | None) -> dict[str, Any]:
    """Move a group to ``status``; ``resolved`` stamps ``resolved_at``. Returns the group."""
    release = check_status_change(status, resolved_in_release)
    wanted = await resolve_group_id(conn, project_ids, group_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.SQL(
                "UPDATE error_groups SET status = %s, resolved_in_release = %s,"
                " resolved_at = CASE WHEN %s = 'resolved' THEN now() END, updated_at = now()"
                " WHERE id = %s AND project_id = ANY(%s::uuid[]) RETURNING {columns}"
            ).format(columns=_COLUMNS),
            [status, release, status, wanted, project_ids],
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"error group {wanted} not found")
    return _group_dict(row)


# -- writing (the ingest writers) ----------------------------------------------------------------

TITLE_CHARS = 300


def title(record: Mapping[str, Any]) -> str:
    """What an error group is called: ``Type: message``, else the message."""
    error_type, error_message = record.get("error_type"), record.get("error_message")
    if error_type:
        text = f"{error_type}: {error_message}" if error_message else str(error_type)
    else:
        text = record.get("message") or error_message or "(no message)"
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"


_SEVERITY = "ARRAY['debug','info','warning','error','critical']"
_UPSERT_GROUPS = f"""
INSERT INTO error_groups AS g (
    id, project_id, fingerprint, fingerprint_version, components, title, error_type, level,
    log_type, first_seen, last_seen, event_count, last_release, sample_log_id)
SELECT gen_random_uuid(), x.project_id, x.fingerprint, x.fingerprint_version,
       coalesce(x.components, '{{}}'::jsonb), x.title, x.error_type, x.level, x.log_type,
       x.first_seen, x.last_seen, x.event_count, x.last_release, x.sample_log_id
FROM jsonb_to_recordset(%s::jsonb) AS x(
    project_id uuid, fingerprint text, fingerprint_version smallint, components jsonb,
    title text, error_type text, level text, log_type text, first_seen timestamptz,
    last_seen timestamptz, event_count bigint, last_release text, sample_log_id uuid)
-- One order for every writer, so that two writers upserting the same groups do not deadlock.
ORDER BY x.project_id, x.fingerprint
ON CONFLICT (project_id, fingerprint) DO UPDATE SET
    event_count = g.event_count + EXCLUDED.event_count,
    first_seen = least(g.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(g.last_seen, EXCLUDED.last_seen),
    last_release = CASE WHEN EXCLUDED.last_seen >= g.last_seen
                        THEN coalesce(EXCLUDED.last_release, g.last_release)
                        ELSE g.last_release END,
    sample_log_id = CASE WHEN EXCLUDED.last_seen >= g.last_seen
                         THEN EXCLUDED.sample_log_id ELSE g.sample_log_id END,
    level = CASE WHEN coalesce(array_position({_SEVERITY}, EXCLUDED.level), 0)
                      > coalesce(array_position({_SEVERITY}, g.level), 0)
                 THEN EXCLUDED.level ELSE g.level END,
    updated_at = now()
"""
# DESIGN §6: a resolved group reopens on an event newer than the resolution whose release is
# the resolved one or newer (or when either release is unknown); an older release does not.
# "Newer" is by ingest time, both clocks being Ledger's: the client's timestamp would let a
# client whose clock runs slow hide a regression (and one whose clock runs fast invent one).
_REGRESS_GROUPS = """
UPDATE error_groups AS g
SET status = 'unresolved', resolved_at = NULL, resolved_in_release = NULL, updated_at = now()
FROM jsonb_to_recordset(%s::jsonb) AS r(
    project_id uuid, fingerprint text, release text, received_at timestamptz)
WHERE g.status = 'resolved' AND g.project_id = r.project_id AND g.fingerprint = r.fingerprint
  AND (g.resolved_at IS NULL OR r.received_at > g.resolved_at)
  AND (r.release IS NULL OR g.resolved_in_release IS NULL
       OR ledger_release_cmp(r.release, g.resolved_in_release) >= 0)
"""


#: The numeric parts of a release ("v1.10.0-rc2": 1, 10, 0, 2); ASCII digits only, as in SQL.
_RELEASE_NUMBERS = re.compile(r"[0-9]+")


def release_cmp(a: str, b: str) -> int:
    """DESIGN §6 release order: numeric parts first (1.10.0 > 1.9.2), then code-point text.

    -1, 0 or 1, as ``ledger_release_cmp`` in SQL answers (parts cut to 18 digits in both).
    """
    na = [int(d[:18]) for d in _RELEASE_NUMBERS.findall(a)]
    nb = [int(d[:18]) for d in _RELEASE_NUMBERS.findall(b)]
    if na != nb:
        return -1 if na < nb else 1
    return 0 if a == b else (-1 if a < b else 1)


def reopens(group: Mapping[str, Any], event: Mapping[str, Any], at: datetime) -> bool:
    """DESIGN §6, as ``_REGRESS_GROUPS`` applies it: would an event seen ``at`` reopen the
    resolved ``group``?"""
    resolved_at = group.get("resolved_at")
    if resolved_at is not None and at <= resolved_at:
        return False
    release, resolved_in = event.get("release"), group.get("resolved_in_release")
    return release is None or resolved_in is None or release_cmp(release, resolved_in) >= 0


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """What the error groups need of one error log (queue entries carry it beside the rows)."""

    project_id: uuid.UUID
    id: uuid.UUID
    timestamp: datetime
    level: str
    log_type: str
    title: str
    error_type: str | None
    release: str | None
    fingerprint: str
    version: int
    #: When Ledger accepted it (the regression rule's clock); the client's ``timestamp`` may
    #: be anything.
    received_at: datetime

    @classmethod
    def from_entry(cls, project_id: uuid.UUID, fields: Sequence[Any]) -> ErrorEvent:
        """From an entry's ``errors`` item (its index first, then these fields in order)."""
        (_, log_id, timestamp, level, log_type, title, error_type, release, fingerprint,
         version) = fields[:10]
        when = datetime.fromisoformat(timestamp)
        # An entry queued before ingested_at was carried: its client time is all there is.
        received = datetime.fromisoformat(fields[10]) if len(fields) > 10 else when
        return cls(project_id, uuid.UUID(log_id), when, level, log_type, title, error_type,
                   release, fingerprint, int(version or 1), received)


@dataclass
class _Group:
    latest: ErrorEvent
    first_seen: datetime
    components: Any
    count: int = 0
    # Latest ingest time per release: enough to decide a regression (the rule is monotone
    # in time).
    releases: dict[str | None, datetime] = field(default_factory=dict)


def aggregate_groups(events: Iterable[ErrorEvent],
                     components: dict[tuple[uuid.UUID, str], Any]) -> list[_Group]:
    """Error events folded into one aggregate per ``(project, fingerprint)``."""
    groups: dict[tuple[uuid.UUID, str], _Group] = {}
    for event in events:
        key = (event.project_id, event.fingerprint)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(event, event.timestamp, components.get(key))
        group.count += 1
        group.first_seen = min(group.first_seen, event.timestamp)
        if event.timestamp >= group.latest.timestamp:
            group.latest = event
        seen = group.releases.get(event.release)
        if seen is None or event.received_at > seen:
            group.releases[event.release] = event.received_at
    return list(groups.values())


async def upsert_groups(conn: psycopg.AsyncConnection[Any], groups: Sequence[_Group]) -> None:
    """Apply the regression rule, then add the batch's counts to ``error_groups``."""
    if not groups:
        return
    regressions = [
        {"project_id": g.latest.project_id, "fingerprint": g.latest.fingerprint,
         "release": release, "received_at": received}
        for g in groups for release, received in g.releases.items()
    ]
    await conn.execute(_REGRESS_GROUPS, (orjson.dumps(regressions).decode(),))
    upserts = [
        {"project_id": g.latest.project_id, "fingerprint": g.latest.fingerprint,
         "fingerprint_version": g.latest.version, "components": g.components,
         "title": g.latest.title, "error_type": g.latest.error_type,
         "level": g.latest.level, "log_type": g.latest.log_type,
         "first_seen": g.first_seen, "last_seen": g.latest.timestamp, "event_count": g.count,
         "last_release": g.latest.release, "sample_log_id": g.latest.id}
        for g in groups
    ]
    await conn.execute(_UPSERT_GROUPS, (orjson.dumps(upserts).decode(),))
