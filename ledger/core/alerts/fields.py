"""Small validators shared by rules and channels: each raises ``InvalidInputError`` by name."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ledger.errors import InvalidInputError

MAX_NAME_CHARS = 100


def check_keys(body: Mapping[str, Any], allowed: set[str], what: str) -> None:
    """Refuse fields this kind of object does not have (a typo must not pass silently)."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInputError(
            f"unknown field {unknown[0]!r} for {what}; known: {', '.join(sorted(allowed))}")


def name(body: Mapping[str, Any]) -> str:
    value = body.get("name")
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError("name is required (a short text)")
    value = value.strip()
    if len(value) > MAX_NAME_CHARS:
        raise InvalidInputError(f"name is at most {MAX_NAME_CHARS} characters")
    return value


def text(body: Mapping[str, Any], key: str, *, required: bool = True,
         max_chars: int = 500) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInputError(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{key} must be text")
    if len(value) > max_chars or "\x00" in value:
        raise InvalidInputError(f"{key} must be at most {max_chars} characters, without NUL")
    return value


def integer(body: Mapping[str, Any], key: str, *, minimum: int, maximum: int,
            default: int | None = None) -> int | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{key} must be a whole number")
    if not minimum <= value <= maximum:
        raise InvalidInputError(f"{key} must be between {minimum} and {maximum}, got {value}")
    return value


def number(body: Mapping[str, Any], key: str, *, minimum: float, maximum: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{key} must be a number")
    if not minimum <= value <= maximum:
        raise InvalidInputError(f"{key} must be between {minimum} and {maximum}, got {value}")
    return float(value)


def boolean(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInputError(f"{key} must be true or false")
    return value


def uuid_text(value: str, what: str) -> str:
    """``value`` as a canonical UUID string, or a 404-worthy error naming ``what``."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidInputError(f"{what} must be a UUID, got {str(value)[:60]!r}") from None


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
