"""Ids on a terminal: short enough to read and type, long enough to stay unique.

Tables show the shortest prefix (at least ``SHORT_ID`` characters) that tells the listed ids
apart, the way `git log --oneline` does; every command that takes an id accepts such a prefix
(the server resolves it, see ``ledger/core/id_prefixes.py``). ``--json`` keeps whole ids.
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger.errors import InvalidInputError

SHORT_ID = 8
MIN_PREFIX = 6
_ID_CHARS = frozenset("0123456789abcdef-")


def short_ids(ids: Iterable[str]) -> dict[str, str]:
    """Each id mapped to its shortest prefix (≥ ``SHORT_ID``) that no other listed id shares."""
    wanted = [str(i) for i in ids]
    width = SHORT_ID
    while width < 36 and len({i[:width] for i in wanted}) < len(set(wanted)):
        width += 1
    return {i: i[:width] for i in wanted}


def checked_id(kind: str, text: str) -> str:
    """``text`` if it can be an id or an id prefix, else the error every command gives.

    The server says the same for what reaches it; checking here also covers what would not
    reach the right route at all (a ``/`` in the id).
    """
    cleaned = text.strip().lower()
    digits = cleaned.replace("-", "")
    if not cleaned or not set(cleaned) <= _ID_CHARS or not MIN_PREFIX <= len(digits) <= 32:
        raise InvalidInputError(
            f"{text.strip()[:64]!r} is not a valid {kind} id: give the whole id or its first"
            f" {MIN_PREFIX} or more characters")
    return cleaned
