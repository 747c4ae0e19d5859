"""The retention rule, in one place: what prune drops whole and what it trims per project.

Both callers feed it the projects' retentions from wherever they can read them (the CLI from the
auth database, the analytics daemon from the auth daemon) and act on the ``Plan`` it returns:

* a monthly partition goes whole (``DROP TABLE``, instant, no DELETE) once every row in it is
  older than the **longest** retention of any project (never less than the default for new
  projects), so no project loses a row it still keeps;
* a project whose retention is **shorter** is trimmed inside the partitions that remain, so one
  project's 365-day setting never keeps another's 7-day data.

Rollups (``aggregated_metrics``, ``bottleneck_metrics``) are never pruned: they outlive the raw
rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ledger.db import partitions
from ledger.db.partitions import expired
from ledger.errors import InvalidInputError

#: Rows deleted per statement while trimming: small enough that each statement is brief.
TRIM_BATCH_ROWS = 5_000

_AGE = re.compile(r"^\s*(\d{1,6})\s*([dwmy]?)\s*$", re.IGNORECASE)
_DAYS_PER_UNIT = {"": 1, "d": 1, "w": 7, "m": 30, "y": 365}


def parse_age(text: str) -> int:
    """``90d``, ``12w``, ``6m`` (30 days), ``1y`` (365 days) or a bare number of days.

    Raises:
        InvalidInputError: not one of those, or zero.
    """
    match = _AGE.match(text)
    if not match or int(match.group(1)) == 0:
        raise InvalidInputError(f"--older-than {text!r}: use a number of days such as 90d,"
                                " 12w, 6m or 1y")
    return int(match.group(1)) * _DAYS_PER_UNIT[match.group(2).lower()]


def longest(retentions: Iterable[int], default_days: int) -> int:
    """The retention that bounds whole-partition drops: the longest of any project, never
    shorter than the default a new project gets."""
    return max([default_days, *retentions])


@dataclass(frozen=True)
class Trim:
    """Delete one project's rows older than ``cutoff`` from the partitions that remain."""

    project_id: str
    retention_days: int
    cutoff: datetime


@dataclass(frozen=True)
class Plan:
    retention_days: int
    cutoff: datetime
    drop: list[str]
    trims: list[Trim]


def plan(partition_names: Iterable[str], retentions: Mapping[str, int], default_days: int,
         now: datetime, *, older_than_days: int | None = None) -> Plan:
    """What to drop and what to trim.

    Args:
        partition_names: the partitions of ``logs`` that exist.
        retentions: retention in days by project id.
        default_days: ``LEDGER_AUTH_RETENTION_DAYS``.
        now: the present (UTC).
        older_than_days: the operator's explicit cut-off (``--older-than``), instead of the
            longest retention: partitions wholly older than it go even if a project keeps more.
    """
    keep = older_than_days or longest(retentions.values(), default_days)
    now = now.astimezone(UTC)
    trims = [Trim(project_id, days, now - timedelta(days=days))
             for project_id, days in sorted(retentions.items()) if days < keep]
    return Plan(keep, now - timedelta(days=keep), expired(partition_names, now, keep), trims)


@dataclass(frozen=True)
class Outcome:
    """What a plan removed (or, for a dry run, would remove)."""

    dropped: list[partitions.PartitionInfo]
    trimmed: dict[str, int]


async def preview(conn: psycopg.AsyncConnection[Any], todo: Plan) -> Outcome:
    """What ``apply`` would remove: the partitions with their rows and bytes, rows per trim."""
    infos = {i.name: i for i in await partitions.describe(conn)}
    doomed = [infos[name] for name in todo.drop if name in infos]
    kept = [name for name in infos if name not in todo.drop]
    trimmed = {}
    for trim in todo.trims:
        if _trimmable(kept, trim.cutoff):
            trimmed[trim.project_id] = await partitions.count_older(
                conn, trim.project_id, trim.cutoff)
    return Outcome(doomed, {p: n for p, n in trimmed.items() if n})


async def apply(conn: psycopg.AsyncConnection[Any], todo: Plan, *,
                batch_rows: int = TRIM_BATCH_ROWS) -> Outcome:
    """Drop the plan's partitions, then trim each shorter-lived project in what remains.

    ``conn`` must be autocommit: every drop and every trim batch commits on its own.
    """
    infos = {i.name: i for i in await partitions.describe(conn)}
    await partitions.drop(conn, todo.drop)
    kept = [name for name in infos if name not in todo.drop]
    trimmed: dict[str, int] = {}
    for trim in todo.trims:
        for name in _trimmable(kept, trim.cutoff):
            deleted = await partitions.trim(conn, name, trim.project_id, trim.cutoff, batch_rows)
            if deleted:
                trimmed[trim.project_id] = trimmed.get(trim.project_id, 0) + deleted
    return Outcome([infos[n] for n in todo.drop if n in infos], trimmed)


def _trimmable(names: Iterable[str], cutoff: datetime) -> list[str]:
    """Partitions that may hold rows older than ``cutoff``."""
    out = []
    for name in names:
        bounds = partitions.month_range(name)
        if bounds is not None and bounds[0] < cutoff:
            out.append(name)
    return out
