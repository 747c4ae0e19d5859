"""Application code the client programs raise from: in-app frames with a chained cause."""

from __future__ import annotations


def read_cache(key: str) -> str:
    cache: dict[str, str] = {}
    return cache[key]


def load_price(sku: str) -> float:
    try:
        return float(read_cache(f"price:{sku}"))
    except KeyError as exc:
        raise TypeError(f"no price for {sku}") from exc
