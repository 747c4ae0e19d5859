"""Grouping settings and merges in the logs database (migration 0003_grouping).

- The setting of a project (fingerprint rules, in-app include/exclude) has a ``revision``
  that goes up by one on every change; each revision is kept in ``grouping_revisions``.
- A merge of group B into group A moves B's count into A, marks B ``merged_into`` A (lists
  leave it out) and records the merge; ingest then sends B's later events to A (it reads the
  active merges with the rules, ``load_config``). An unmerge takes the moved count back from A,
  shows B again and sends its later events to B again; events that reached A while merged stay
  in A. Merging a group that has groups merged into it re-points those to the new target.

Every function takes the caller's projects and refuses (404) a group outside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

from ledger.core import error_groups
from ledger.core.frames import InAppRules
from ledger.core.grouping_rules import (
    MAX_IN_APP_CHARS,
    MAX_IN_APP_ENTRIES,
    MAX_RULES,
    GroupingConfig,
    RuleError,
    parse_rule,
)
from ledger.errors import InvalidInputError, NotFoundError

__all__ = [
    "add_rule",
    "get_settings",
    "load_config",
    "merge",
    "merge_history",
    "remove_rule",
    "set_in_app",
    "unmerge",
]

Conn = psycopg.AsyncConnection[Any]


def _check_rule(text: str) -> str:
    try:
        return parse_rule(text).text
    except RuleError as exc:
        raise InvalidInputError(f"rule: {exc}") from None


def _check_prefixes(name: str, values: Sequence[str]) -> list[str]:
    cleaned = [v.strip() for v in values if v.strip()]
    if len(cleaned) > MAX_IN_APP_ENTRIES:
        raise InvalidInputError(f"{name} must hold at most {MAX_IN_APP_ENTRIES} entries")
    if any(len(v) > MAX_IN_APP_CHARS or "\x00" in v for v in cleaned):
        raise InvalidInputError(f"{name} entries must be at most {MAX_IN_APP_CHARS} characters")
    return cleaned


async def _current(conn: Conn, project_id: str, *, lock: bool) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT revision, rules, in_app_include, in_app_exclude, updated_at"
            " FROM grouping_settings WHERE project_id = %s" + (" FOR UPDATE" if lock else ""),
            [project_id])
        row = await cur.fetchone()
    if row is None:
        return {"revision": 0, "rules": [], "in_app_include": [], "in_app_exclude": [],
                "updated_at": None}
    return dict(row)


def _settings_dict(project_id: str, row: dict[str, Any]) -> dict[str, Any]:
    updated = row.get("updated_at")
    return {
        "project_id": project_id,
        "revision": row["revision"],
        "rules": [{"index": i, **parse_rule(text).to_dict()}
                  for i, text in enumerate(row["rules"])],
        "in_app": {"include": list(row["in_app_include"]),
                   "exclude": list(row["in_app_exclude"])},
        "updated_at": updated.isoformat() if updated is not None else None,
    }


async def _save(conn: Conn, project_id: str, row: dict[str, Any], change: str,
                actor: str | None) -> dict[str, Any]:
    revision = int(row["revision"]) + 1
    rules = orjson.dumps(row["rules"]).decode()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO grouping_settings AS s"
            " (project_id, revision, rules, in_app_include, in_app_exclude, updated_at)"
            " VALUES (%s, %s, %s::jsonb, %s, %s, now())"
            " ON CONFLICT (project_id) DO UPDATE SET revision = EXCLUDED.revision,"
            " rules = EXCLUDED.rules, in_app_include = EXCLUDED.in_app_include,"
            " in_app_exclude = EXCLUDED.in_app_exclude, updated_at = now()"
            " RETURNING revision, rules, in_app_include, in_app_exclude, updated_at",
            [project_id, revision, rules, row["in_app_include"], row["in_app_exclude"]])
        saved = await cur.fetchone()
        await cur.execute(
            "INSERT INTO grouping_revisions (project_id, revision, rules, in_app_include,"
            " in_app_exclude, change, changed_by) VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s)",
            [project_id, revision, rules, row["in_app_include"], row["in_app_exclude"], change,
             actor])
    assert saved is not None
    return _settings_dict(project_id, dict(saved))


async def get_settings(conn: Conn, project_id: str, *,
                       with_history: bool = False) -> dict[str, Any]:
    """The project's grouping setting (revision 0 and empty when never set)."""
    settings = _settings_dict(project_id, await _current(conn, project_id, lock=False))
    if with_history:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT revision, change, changed_by, changed_at FROM grouping_revisions"
                " WHERE project_id = %s ORDER BY revision DESC LIMIT 100", [project_id])
            rows = await cur.fetchall()
        settings["history"] = [{**r, "changed_at": r["changed_at"].isoformat()} for r in rows]
    return settings


async def add_rule(conn: Conn, project_id: str, text: str, *, position: int | None = None,
                   actor: str | None = None) -> dict[str, Any]:
    """Add a fingerprint rule (at the end, or before ``position``); the new setting."""
    rule = _check_rule(text)
    async with conn.transaction():
        row = await _current(conn, project_id, lock=True)
        rules = list(row["rules"])
        if len(rules) >= MAX_RULES:
            raise InvalidInputError(f"a project may have at most {MAX_RULES} fingerprint rules")
        if position is None or not 0 <= position <= len(rules):
            position = len(rules)
        rules.insert(position, rule)
        return await _save(conn, project_id, {**row, "rules": rules}, f"add rule {rule}",
                           actor)


async def remove_rule(conn: Conn, project_id: str, index: int, *,
                      actor: str | None = None) -> dict[str, Any]:
    """Remove the rule at ``index`` (as listed); the new setting."""
    async with conn.transaction():
        row = await _current(conn, project_id, lock=True)
        rules = list(row["rules"])
        if not 0 <= index < len(rules):
            raise NotFoundError(f"no fingerprint rule {index} (the project has {len(rules)})")
        removed = rules.pop(index)
        return await _save(conn, project_id, {**row, "rules": rules}, f"remove rule {removed}",
                           actor)


async def set_in_app(conn: Conn, project_id: str, include: Sequence[str],
                     exclude: Sequence[str], *, actor: str | None = None) -> dict[str, Any]:
    """Replace the in-app include/exclude prefixes; the new setting."""
    include = _check_prefixes("include", include)
    exclude = _check_prefixes("exclude", exclude)
    async with conn.transaction():
        row = await _current(conn, project_id, lock=True)
        return await _save(conn, project_id, {**row, "in_app_include": include,
                                              "in_app_exclude": exclude},
                           f"in-app include {include} exclude {exclude}", actor)


async def load_config(conn: Conn, project_id: str) -> GroupingConfig:
    """What ingest applies to the project's events: rules, in-app setting, active merges."""
    row = await _current(conn, project_id, lock=False)
    cur = await conn.execute(
        "SELECT fingerprint, target_fingerprint FROM error_group_merges"
        " WHERE project_id = %s AND unmerged_at IS NULL", [project_id])
    merges = {str(a): str(b) for a, b in await cur.fetchall()}
    return GroupingConfig(
        revision=int(row["revision"]),
        rules=tuple(parse_rule(text) for text in row["rules"]),
        in_app=InAppRules(tuple(row["in_app_include"]), tuple(row["in_app_exclude"])),
        merges=merges)


# --------------------------------------------------------------------------------------------
# Merges
# --------------------------------------------------------------------------------------------

_GROUP_FOR_UPDATE = ("SELECT id, project_id, fingerprint, event_count, first_seen, last_seen,"
                     " merged_into FROM error_groups WHERE id = ANY(%s::uuid[])"
                     " AND project_id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE")


async def _locked(conn: Conn, project_ids: list[str], ids: list[str]) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_GROUP_FOR_UPDATE, [ids, project_ids])
        rows = await cur.fetchall()
    found = {str(r["id"]): r for r in rows}
    for wanted in ids:
        if wanted not in found:
            raise NotFoundError(f"error group {wanted} not found")
    return found


async def merge(conn: Conn, project_ids: list[str], target_id: str, source_ids: Sequence[str],
                *, actor: str | None = None) -> dict[str, Any]:
    """Merge ``source_ids`` into ``target_id``; the surviving group with its merge history."""
    target = await error_groups.resolve_group_id(conn, project_ids, target_id)
    sources = list(dict.fromkeys([await error_groups.resolve_group_id(conn, project_ids, s)
                                  for s in source_ids]))
    if not sources:
        raise InvalidInputError("name at least one group to merge into the target")
    if len(sources) > 50:
        raise InvalidInputError("at most 50 groups can be merged at once")
    if target in sources:
        raise InvalidInputError("a group cannot be merged into itself")
    async with conn.transaction():
        groups = await _locked(conn, project_ids, [target, *sources])
        into = groups[target]
        if into["merged_into"] is not None:
            raise InvalidInputError(f"group {target} is itself merged into"
                                    f" {into['merged_into']}; merge into that one")
        for source in sources:
            group = groups[source]
            if group["project_id"] != into["project_id"]:
                raise InvalidInputError("groups of different projects cannot be merged")
            if group["merged_into"] is not None:
                raise InvalidInputError(f"group {source} is already merged into"
                                        f" {group['merged_into']}")
        for source in sources:
            await _merge_one(conn, into, groups[source], actor)
    return await group_with_merges(conn, project_ids, target)


async def _merge_one(conn: Conn, into: dict[str, Any], group: dict[str, Any],
                     actor: str | None) -> None:
    project = into["project_id"]
    # Groups merged into this one follow it to the new target.
    await conn.execute(
        "UPDATE error_group_merges SET target_fingerprint = %s, target_group_id = %s"
        " WHERE project_id = %s AND target_group_id = %s AND unmerged_at IS NULL",
        [into["fingerprint"], into["id"], project, group["id"]])
    await conn.execute(
        "UPDATE error_groups SET merged_into = %s WHERE project_id = %s AND merged_into = %s",
        [into["id"], project, group["id"]])
    await conn.execute(
        "INSERT INTO error_group_merges (project_id, fingerprint, target_fingerprint,"
        " source_group_id, target_group_id, moved_count, merged_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [project, group["fingerprint"], into["fingerprint"], group["id"], into["id"],
         group["event_count"], actor])
    await conn.execute(
        "UPDATE error_groups SET event_count = event_count + %s,"
        " first_seen = least(first_seen, %s), last_seen = greatest(last_seen, %s),"
        " updated_at = now() WHERE id = %s",
        [group["event_count"], group["first_seen"], group["last_seen"], into["id"]])
    await conn.execute("UPDATE error_groups SET merged_into = %s, updated_at = now()"
                       " WHERE id = %s", [into["id"], group["id"]])


async def unmerge(conn: Conn, project_ids: list[str], target_id: str, source_id: str, *,
                  actor: str | None = None) -> dict[str, Any]:
    """Undo the merge of ``source_id`` into ``target_id``; the target with its history."""
    target = await error_groups.resolve_group_id(conn, project_ids, target_id)
    source = await error_groups.resolve_group_id(conn, project_ids, source_id)
    async with conn.transaction():
        await _locked(conn, project_ids, sorted([target, source]))
        cur = await conn.execute(
            "UPDATE error_group_merges SET unmerged_at = now(), unmerged_by = %s"
            " WHERE source_group_id = %s AND target_group_id = %s AND unmerged_at IS NULL"
            " RETURNING moved_count", [actor, source, target])
        found = await cur.fetchone()
        if found is None:
            raise NotFoundError(f"group {source} is not merged into {target}")
        await conn.execute(
            "UPDATE error_groups SET event_count = greatest(0, event_count - %s),"
            " updated_at = now() WHERE id = %s", [found[0], target])
        await conn.execute("UPDATE error_groups SET merged_into = NULL, updated_at = now()"
                           " WHERE id = %s", [source])
    return await group_with_merges(conn, project_ids, target)


async def merge_history(conn: Conn, project_ids: list[str], group_id: str) -> list[dict[str, Any]]:
    """Every merge into or out of the group, newest first (unmerged ones included)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT source_group_id, target_group_id, fingerprint, target_fingerprint,"
            " moved_count, merged_by, merged_at, unmerged_by, unmerged_at"
            " FROM error_group_merges WHERE project_id = ANY(%s::uuid[])"
            " AND (target_group_id = %s OR source_group_id = %s)"
            " ORDER BY merged_at DESC, id DESC LIMIT 200",
            [project_ids, group_id, group_id])
        rows = await cur.fetchall()
    out = []
    for row in rows:
        item = {k: (str(v) if k.endswith("group_id") else v) for k, v in row.items()}
        for key in ("merged_at", "unmerged_at"):
            item[key] = row[key].isoformat() if row[key] is not None else None
        item["active"] = row["unmerged_at"] is None
        out.append(item)
    return out


async def group_with_merges(conn: Conn, project_ids: list[str],
                            group_id: str) -> dict[str, Any]:
    """``error_groups.get_group`` plus ``merges`` (its history)."""
    group = await error_groups.get_group(conn, project_ids, group_id)
    group["merges"] = await merge_history(conn, project_ids, str(group["id"]))
    return group
