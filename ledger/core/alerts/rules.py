"""Alert rules per project, and snoozes of rules and groups.

Kinds (``threshold`` and ``window_minutes`` as each needs them):

    new_group        a new error group appears
    regression       a resolved group reopens (DESIGN §6 release rule)
    group_frequency  one group gets >= threshold events within window_minutes
    error_rate       the project's error/critical logs reach >= threshold per minute, averaged
                     over window_minutes
    no_logs          no log at all (optionally of one environment) for window_minutes

Filters (lists of accepted values; empty means any): environment, level, log_type, release.
A ``cooldown_seconds`` allows one alert per rule and group (or project) per cooldown.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

from ledger.core.alerts import channels as channels_store
from ledger.core.alerts import fields
from ledger.errors import ConflictError, InvalidInputError, NotFoundError

KINDS = ("new_group", "regression", "group_frequency", "error_rate", "no_logs")
LEVELS = ("error", "critical", "warning", "info", "debug")
LOG_TYPES = ("console", "logger", "exception", "network", "database", "endpoint", "custom")
FILTERS = ("environment", "level", "log_type", "release")
DEFAULT_COOLDOWN_SECONDS = 3600
MAX_COOLDOWN_SECONDS = 7 * 86_400
MAX_WINDOW_MINUTES = 7 * 24 * 60
MAX_FILTER_VALUES = 20
MAX_SNOOZE = timedelta(days=90)
_FIELDS = {"name", "kind", "threshold", "window_minutes", "filters", "cooldown_seconds",
           "channels", "enabled"}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass(frozen=True, eq=False)  # hashed by identity: the evaluator keys batches by rule
class Rule:
    id: str
    project_id: str
    name: str
    kind: str
    threshold: float | None
    window_minutes: int | None
    filters: dict[str, list[str]]
    cooldown_seconds: int
    channel_ids: list[str]
    enabled: bool
    snoozed_until: datetime | None
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id, "project_id": self.project_id, "name": self.name, "kind": self.kind,
            "threshold": self.threshold, "window_minutes": self.window_minutes,
            "filters": self.filters, "cooldown_seconds": self.cooldown_seconds,
            "channels": self.channel_ids, "enabled": self.enabled,
            "snoozed_until": self.snoozed_until.isoformat() if self.snoozed_until else None,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
        }

    def snoozed(self, now: datetime) -> bool:
        return self.snoozed_until is not None and self.snoozed_until > now

    def accepts(self, event: Mapping[str, Any]) -> bool:
        """Whether an error event (a notification) passes every filter of the rule."""
        for key, wanted in self.filters.items():
            if wanted and event.get(key) not in wanted:
                return False
        return True


def _filters(raw: Any, kind: str) -> dict[str, list[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidInputError("filters must be an object, e.g. {\"environment\": [\"prod\"]}")
    fields.check_keys(raw, set(FILTERS), "filters")
    out: dict[str, list[str]] = {}
    for key, values in raw.items():
        if isinstance(values, str):
            values = [values]
        if (not isinstance(values, list) or len(values) > MAX_FILTER_VALUES
                or not all(isinstance(v, str) and 0 < len(v) <= 100 for v in values)):
            raise InvalidInputError(f"filters.{key} must list up to {MAX_FILTER_VALUES} values")
        choices = {"level": LEVELS, "log_type": LOG_TYPES}.get(key)
        bad = [v for v in values if choices and v not in choices]
        if bad:
            raise InvalidInputError(f"filters.{key}: {bad[0]!r} is not one of"
                                    f" {', '.join(choices or ())}")
        if values:
            out[key] = list(dict.fromkeys(values))
    if kind == "no_logs" and set(out) - {"environment"}:
        raise InvalidInputError("a no_logs rule filters on environment only")
    return out


def _shape(body: Mapping[str, Any], kind: str) -> tuple[float | None, int | None]:
    """``threshold`` and ``window_minutes`` as ``kind`` needs them."""
    window = fields.integer(body, "window_minutes", minimum=1, maximum=MAX_WINDOW_MINUTES)
    threshold: float | None
    if kind == "group_frequency":
        count = fields.integer(body, "threshold", minimum=1, maximum=10_000_000)
        threshold = None if count is None else float(count)
    else:
        threshold = fields.number(body, "threshold", minimum=0.001, maximum=10_000_000)
    needs = {"group_frequency": ("threshold", "window_minutes"),
             "error_rate": ("threshold", "window_minutes"), "no_logs": ("window_minutes",)}
    given = {"threshold": threshold, "window_minutes": window}
    for key in needs.get(kind, ()):
        if given[key] is None:
            raise InvalidInputError(f"a {kind} rule needs {key}")
    for key in ("threshold", "window_minutes"):
        if key not in needs.get(kind, ()) and given[key] is not None:
            raise InvalidInputError(f"a {kind} rule has no {key}")
    return threshold, window


@dataclass(frozen=True)
class RuleInput:
    name: str
    kind: str
    threshold: float | None
    window_minutes: int | None
    filters: dict[str, list[str]]
    cooldown_seconds: int
    channels: Any
    enabled: bool


def validate(body: Mapping[str, Any], *, base: Rule | None = None) -> RuleInput:
    """A new rule from ``body``, or ``base`` changed by the fields ``body`` names."""
    if not isinstance(body, Mapping):
        raise InvalidInputError("the body must be a JSON object")
    fields.check_keys(body, _FIELDS, "a rule")
    merged: dict[str, Any] = {}
    if base is not None:
        if "kind" in body and body["kind"] != base.kind:
            raise InvalidInputError("a rule's kind cannot change: add a new rule")
        merged = {"name": base.name, "kind": base.kind, "threshold": base.threshold,
                  "window_minutes": base.window_minutes, "filters": base.filters,
                  "cooldown_seconds": base.cooldown_seconds, "channels": base.channel_ids,
                  "enabled": base.enabled}
        if base.kind == "group_frequency" and base.threshold is not None:
            merged["threshold"] = int(base.threshold)
    merged.update(body)
    kind = merged.get("kind")
    if kind not in KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}")
    threshold, window = _shape(merged, kind)
    cooldown = fields.integer(merged, "cooldown_seconds", minimum=0,
                              maximum=MAX_COOLDOWN_SECONDS, default=DEFAULT_COOLDOWN_SECONDS)
    assert cooldown is not None
    if "channels" not in merged:
        raise InvalidInputError("channels is required: the channels (ids or names) to alert")
    return RuleInput(fields.name(merged), kind, threshold, window,
                     _filters(merged.get("filters"), kind), cooldown, merged["channels"],
                     fields.boolean(merged, "enabled", True))


def _row(row: Mapping[str, Any]) -> Rule:
    return Rule(id=str(row["id"]), project_id=str(row["project_id"]), name=row["name"],
                kind=row["kind"], threshold=row["threshold"], window_minutes=row["window_minutes"],
                filters=dict(row["filters"]), cooldown_seconds=row["cooldown_seconds"],
                channel_ids=[str(c) for c in row["channel_ids"]], enabled=row["enabled"],
                snoozed_until=row["snoozed_until"], created_at=row["created_at"],
                updated_at=row["updated_at"])


async def create(conn: psycopg.AsyncConnection[Any], project_id: str,
                 body: Mapping[str, Any]) -> Rule:
    """Validate and store a rule; unknown channels or a duplicate name store nothing."""
    rule = validate(body)
    channel_ids = await channels_store.resolve(conn, project_id, rule.channels)
    async with conn.cursor(row_factory=dict_row) as cur:
        try:
            await cur.execute(
                "INSERT INTO alert_rules (id, project_id, name, kind, threshold, window_minutes,"
                " filters, cooldown_seconds, channel_ids, enabled)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s::uuid[], %s) RETURNING *",
                (uuid.uuid4(), project_id, rule.name, rule.kind, rule.threshold,
                 rule.window_minutes, orjson.dumps(rule.filters).decode(), rule.cooldown_seconds,
                 channel_ids, rule.enabled))
        except psycopg.errors.UniqueViolation:
            raise ConflictError(f"the project already has a rule named {rule.name!r}") from None
        row = await cur.fetchone()
    assert row is not None
    return _row(row)


async def update(conn: psycopg.AsyncConnection[Any], project_id: str, ref: str,
                 body: Mapping[str, Any]) -> Rule:
    """Change the fields ``body`` names (the kind stays)."""
    base = await get(conn, project_id, ref)
    rule = validate(body, base=base)
    channel_ids = await channels_store.resolve(conn, project_id, rule.channels)
    async with conn.cursor(row_factory=dict_row) as cur:
        try:
            await cur.execute(
                "UPDATE alert_rules SET name = %s, threshold = %s, window_minutes = %s,"
                " filters = %s::jsonb, cooldown_seconds = %s, channel_ids = %s::uuid[],"
                " enabled = %s, updated_at = now() WHERE id = %s RETURNING *",
                (rule.name, rule.threshold, rule.window_minutes,
                 orjson.dumps(rule.filters).decode(), rule.cooldown_seconds, channel_ids,
                 rule.enabled, base.id))
        except psycopg.errors.UniqueViolation:
            raise ConflictError(f"the project already has a rule named {rule.name!r}") from None
        row = await cur.fetchone()
    assert row is not None
    return _row(row)


async def get(conn: psycopg.AsyncConnection[Any], project_id: str, ref: str) -> Rule:
    """The project's rule with id or name ``ref``, or ``NotFoundError``."""
    column = "id" if fields.is_uuid(ref) else "name"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT * FROM alert_rules WHERE project_id = %s AND {column} = %s",
            (project_id, ref))
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no alert rule {ref[:100]!r} in this project")
    return _row(row)


async def list_for(conn: psycopg.AsyncConnection[Any], project_id: str) -> list[Rule]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM alert_rules WHERE project_id = %s ORDER BY name",
                          (project_id,))
        return [_row(r) for r in await cur.fetchall()]


async def enabled(conn: psycopg.AsyncConnection[Any]) -> list[Rule]:
    """Every enabled rule of every project (the evaluator's working set)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM alert_rules WHERE enabled ORDER BY project_id, id")
        return [_row(r) for r in await cur.fetchall()]


async def enabled_for(conn: psycopg.AsyncConnection[Any], project_id: str) -> list[Rule]:
    """The enabled rules of one project (the evaluator's check before a batch)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM alert_rules WHERE enabled AND project_id = %s"
                          " ORDER BY id", (project_id,))
        return [_row(r) for r in await cur.fetchall()]


async def delete(conn: psycopg.AsyncConnection[Any], project_id: str, ref: str) -> Rule:
    rule = await get(conn, project_id, ref)
    async with conn.cursor() as cur:
        await cur.execute("DELETE FROM alert_rules WHERE id = %s", (rule.id,))
        await cur.execute("DELETE FROM alert_cooldowns WHERE rule_id = %s", (rule.id,))
    return rule


# -- snooze -------------------------------------------------------------------------------------


def parse_duration(raw: str) -> timedelta:
    """``30m``, ``2h``, ``1d``... (at most 90 days)."""
    match = _DURATION.match(str(raw))
    if not match:
        raise InvalidInputError(f"duration must look like 30m, 2h or 1d, got {str(raw)[:40]!r}")
    value = timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    if not timedelta(0) < value <= MAX_SNOOZE:
        raise InvalidInputError("a snooze lasts more than 0 and at most 90 days")
    return value


@dataclass(frozen=True)
class Snoozed:
    target: str  # "rule" or "group"
    id: str
    name: str
    until: datetime | None

    def public(self) -> dict[str, Any]:
        return {"target": self.target, "id": self.id, "name": self.name,
                "snoozed_until": self.until.isoformat() if self.until else None}


async def _group(conn: psycopg.AsyncConnection[Any], project_id: str,
                 ref: str) -> tuple[str, str, str] | None:
    if not fields.is_uuid(ref):
        return None
    async with conn.cursor() as cur:
        await cur.execute("SELECT id, fingerprint, title FROM error_groups"
                          " WHERE project_id = %s AND id = %s", (project_id, ref))
        row = await cur.fetchone()
    return None if row is None else (str(row[0]), row[1], row[2])


async def snooze(conn: psycopg.AsyncConnection[Any], project_id: str, ref: str,
                 duration: str | None) -> Snoozed:
    """Snooze (``duration`` given) or unsnooze (``None``) a rule or an error group.

    ``ref`` is a rule (id or name) or an error group id; a rule is looked for first.
    """
    until = None if duration is None else datetime.now(UTC) + parse_duration(duration)
    try:
        rule = await get(conn, project_id, ref)
    except NotFoundError:
        rule = None
    if rule is not None:
        await conn.execute("UPDATE alert_rules SET snoozed_until = %s, updated_at = now()"
                           " WHERE id = %s", (until, rule.id))
        return Snoozed("rule", rule.id, rule.name, until)
    group = await _group(conn, project_id, ref)
    if group is None:
        raise NotFoundError(f"no alert rule or error group {ref[:100]!r} in this project")
    group_id, fingerprint, title = group
    if until is None:
        await conn.execute("DELETE FROM alert_group_snoozes WHERE project_id = %s"
                           " AND fingerprint = %s", (project_id, fingerprint))
    else:
        await conn.execute(
            "INSERT INTO alert_group_snoozes (project_id, fingerprint, group_id, snoozed_until)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (project_id, fingerprint)"
            " DO UPDATE SET snoozed_until = EXCLUDED.snoozed_until",
            (project_id, fingerprint, group_id, until))
    return Snoozed("group", group_id, title, until)
