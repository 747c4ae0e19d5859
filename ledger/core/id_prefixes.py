"""Ids people can type: a whole UUID, or its first characters when only one id starts so.

Every place that takes the id of an error group or a log accepts a unique prefix of at least
``MIN_PREFIX`` hex characters (dashes are ignored), the way git takes short commit hashes. A
prefix becomes a range of UUIDs (``prefix000…`` to ``prefixfff…``): PostgreSQL compares UUIDs
byte by byte, so the range is exactly the ids that start with it, and the primary keys answer
it from their index instead of a scan of ``id::text``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
from psycopg import sql

from ledger.errors import InvalidInputError, NotFoundError

MIN_PREFIX = 6
_HEX = re.compile(r"^[0-9a-f]+$")
#: Enough matches to say "ambiguous: N matches" without counting a whole table.
_MOST_COUNTED = 100


def whole_or_prefix(kind: str, text: str) -> str | tuple[str, str]:
    """The canonical UUID, or the ``(low, high)`` range of the UUIDs that start with ``text``.

    Raises:
        InvalidInputError: ``text`` is neither a UUID nor ``MIN_PREFIX``+ hex characters.
    """
    cleaned = text.strip().lower()
    try:
        return str(uuid.UUID(cleaned))
    except ValueError:
        pass
    digits = cleaned.replace("-", "")
    if len(digits) < MIN_PREFIX or len(digits) >= 32 or not _HEX.match(digits):
        raise InvalidInputError(
            f"{text.strip()[:64]!r} is not a valid {kind} id: give the whole id or its first"
            f" {MIN_PREFIX} or more characters")
    return (str(uuid.UUID(digits.ljust(32, "0"))), str(uuid.UUID(digits.ljust(32, "f"))))


async def resolve(conn: psycopg.AsyncConnection[Any], table: str, kind: str,
                  project_ids: list[str], text: str) -> str:
    """The one id of ``table`` (among ``project_ids``) that ``text`` is or starts.

    Raises:
        InvalidInputError: ``text`` is malformed, or several ids start with it.
        NotFoundError: no id of those projects starts with it.
    """
    wanted = whole_or_prefix(kind, text)
    if isinstance(wanted, str):
        return wanted
    low, high = wanted
    prefix = text.strip().lower()
    cur = await conn.execute(
        sql.SQL("SELECT DISTINCT id FROM {table} WHERE project_id = ANY(%s::uuid[])"
                " AND id BETWEEN %s AND %s LIMIT %s").format(table=sql.Identifier(table)),
        [project_ids, low, high, _MOST_COUNTED + 1])
    found = [str(row[0]) for row in await cur.fetchall()]
    if not found:
        raise NotFoundError(f"{kind} {prefix} not found")
    if len(found) > 1:
        many = f"{_MOST_COUNTED}+" if len(found) > _MOST_COUNTED else str(len(found))
        raise InvalidInputError(f"{kind} id {prefix} is ambiguous: {many} matches;"
                                " give more characters")
    return found[0]
