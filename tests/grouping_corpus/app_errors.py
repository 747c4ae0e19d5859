"""Real Python code that fails, for the cross-protocol grouping test: two different errors
raised while handling the same cause, in two call paths."""

from __future__ import annotations

_CACHE: dict[str, int] = {}


def _cache_get(key: str) -> int:
    return _CACHE[key]


def load_price(sku: str) -> int:
    try:
        return _cache_get(f"price:{sku}")
    except KeyError as exc:
        raise TypeError(f"no price for {sku}") from exc


def load_stock(sku: str) -> int:
    try:
        return _cache_get(f"stock:{sku}")
    except KeyError as exc:
        raise TypeError(f"no stock for {sku}") from exc
