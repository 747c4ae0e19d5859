"""Prometheus metrics of one daemon: counters, gauges and histograms, rendered as text.

Hand-rolled like the gateway's ``/metrics`` (``gateway/routes/metrics.py``): the text format
(version 0.0.4) is small and stable, and a counter is a dict increment on the hot path, so no
dependency is needed. Every name starts with ``ledger_``.

Figures that live elsewhere (a queue depth in Redis, a task's own count) are not copied on
every change: a *collector* registered with ``Registry.collect`` runs just before each scrape
and sets them, so a scrape always shows the current value.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from ledger import __version__

logger = logging.getLogger(__name__)

#: Seconds; from a fast RPC to a slow batch.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Logs per writer batch.
SIZE_BUCKETS = (1, 10, 100, 500, 1000, 2000, 5000, 10_000, 50_000)

Labels = tuple[str, ...]
Collector = Callable[[], Awaitable[None]]


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _label_text(names: Sequence[str], values: Labels, extra: str = "") -> str:
    pairs = [f'{n}="{_esc(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Family:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        if not name.startswith("ledger_"):
            raise ValueError(f"metric {name!r} must start with ledger_")
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)

    def _key(self, labels: dict[str, str]) -> Labels:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Family):
    """A value that only goes up (``inc``)."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        # Without labels the one series exists from the start: a scrape shows 0, not nothing.
        self.values: dict[Labels, float] = {} if self.labels else {(): 0}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(self._key(labels), 0)

    def set_total(self, value: float, **labels: str) -> None:
        """For collectors: the running total some task already keeps."""
        self.values[self._key(labels)] = value

    def samples(self) -> list[str]:
        return [f"{self.name}{_label_text(self.labels, k)} {_number(v)}"
                for k, v in sorted(self.values.items())]


class Gauge(Counter):
    """A value that goes up and down (``set``); ``replace`` swaps every labelled value at once
    (a collector that reads all projects drops the ones that are gone)."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        self.values[self._key(labels)] = value

    def replace(self, values: Iterable[tuple[dict[str, str], float]]) -> None:
        self.values = {self._key(labels): value for labels, value in values}


class Histogram(_Family):
    """Observations counted into buckets, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float],
                 labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = {}
        if not self.labels:
            self.counts[()] = [0] * (len(self.buckets) + 1)
            self.sums[()] = 0.0

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        counts = self.counts.setdefault(key, [0] * (len(self.buckets) + 1))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[key] = self.sums.get(key, 0.0) + value

    def count(self, **labels: str) -> int:
        return sum(self.counts.get(self._key(labels), ()))

    def samples(self) -> list[str]:
        lines: list[str] = []
        for key, counts in sorted(self.counts.items()):
            total = 0
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                total += n
                le = "+Inf" if bound == float("inf") else _number(bound)
                bucket = _label_text(self.labels, key, 'le="' + le + '"')
                lines.append(f"{self.name}_bucket{bucket} {total}")
            labels = _label_text(self.labels, key)
            lines.append(f"{self.name}_sum{labels} {self.sums[key]:.6f}")
            lines.append(f"{self.name}_count{labels} {total}")
        return lines


class Registry:
    """The metrics of one daemon process."""

    def __init__(self, daemon: str) -> None:
        self.daemon = daemon
        self._families: dict[str, _Family] = {}
        self._collectors: list[Collector] = []
        info = self.gauge("ledger_build_info", "Which daemon this is and its version (always 1).",
                          ("daemon", "version"))
        info.set(1, daemon=daemon, version=__version__)

    def _add(self, family: _Family) -> None:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is registered twice")
        self._families[family.name] = family

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        family = Counter(name, help_text, labels)
        self._add(family)
        return family

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        family = Gauge(name, help_text, labels)
        self._add(family)
        return family

    def histogram(self, name: str, help_text: str, buckets: Sequence[float],
                  labels: Sequence[str] = ()) -> Histogram:
        family = Histogram(name, help_text, buckets, labels)
        self._add(family)
        return family

    def collect(self, collector: Collector) -> None:
        """Run ``collector`` before every scrape (it sets gauges from where the figures live)."""
        self._collectors.append(collector)

    async def render(self) -> str:
        """The text exposition format; a collector that fails leaves its last values."""
        for collector in self._collectors:
            try:
                await collector()
            except Exception as exc:  # a scrape must answer even when Redis is away
                logger.warning("%s: a metrics collector failed: %s", self.daemon, exc)
        lines: list[str] = []
        for family in self._families.values():
            lines += family.header() + family.samples()
        return "\n".join(lines) + "\n"


def observe_rpcs(registry: Registry) -> Callable[[str, str, float], None]:
    """Request metrics of a gRPC daemon; the result is the interceptor's call observer."""
    requests = registry.counter("ledger_rpc_requests_total",
                                "gRPC calls served, by RPC and status code.", ("rpc", "code"))
    duration = registry.histogram("ledger_rpc_duration_seconds", "Time to serve a gRPC call.",
                                  LATENCY_BUCKETS, ("rpc",))

    def observe(rpc: str, code: str, seconds: float) -> None:
        requests.inc(rpc=rpc, code=code)
        duration.observe(seconds, rpc=rpc)

    return observe
