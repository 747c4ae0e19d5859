"""``GET /metrics``: Prometheus text of the gateway itself, names prefixed ``ledger_``.

Hand-rolled (a few counters and one histogram) rather than a dependency: the text format is
simple and stable, and the counters are plain dict increments on the hot path.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.daemons.gateway.edge.breaker import BreakerState

UNMATCHED = "<unmatched>"  # one label for every unknown path: scanners cannot explode the series
#: Sentry envelope item types counted by name; any other type is counted as ``other``.
SENTRY_ITEM_TYPES = frozenset(("event", "transaction", "session", "sessions", "client_report",
                               "attachment", "user_report", "feedback", "profile",
                               "replay_event", "replay_recording", "check_in", "span", "log",
                               "statsd", "metric_buckets"))
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The gateway's counters. One instance per app; rendered by ``render``."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.duration_counts: defaultdict[str, list[int]] = defaultdict(
            lambda: [0] * (len(_BUCKETS) + 1))
        self.duration_sums: defaultdict[str, float] = defaultdict(float)
        self.ingest_logs: defaultdict[str, int] = defaultdict(int)
        self.key_cache: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.sentry_items: defaultdict[str, int] = defaultdict(int)
        self.breaker_state: Callable[[], BreakerState] = lambda: BreakerState.CLOSED
        self.query_breaker_state: Callable[[], BreakerState] = lambda: BreakerState.CLOSED
        #: Open live (SSE) streams of this gateway; the lifespan points it at the hub.
        self.sse_clients: Callable[[], int] = lambda: 0

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests[(route, method, status)] += 1
        self.duration_counts[route][bisect.bisect_left(_BUCKETS, seconds)] += 1
        self.duration_sums[route] += seconds

    def count_logs(self, accepted: int, rejected: int) -> None:
        self.ingest_logs["accepted"] += accepted
        self.ingest_logs["rejected"] += rejected

    def count_sentry_item(self, item_type: str) -> None:
        """One item of a Sentry envelope, by type (unknown types as ``other``)."""
        self.sentry_items[item_type if item_type in SENTRY_ITEM_TYPES else "other"] += 1

    def key_lookup(self, layer: str, hit: bool) -> None:
        """``layer`` is ``memory`` (in-process) or ``redis``."""
        self.key_cache[(layer, "hit" if hit else "miss")] += 1

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        _family(lines, "ledger_http_requests_total", "counter",
                "HTTP requests answered by the gateway.",
                ((f'route="{_esc(r)}",method="{m}",status="{s}"', n)
                 for (r, m, s), n in sorted(self.requests.items())))
        lines += ["# HELP ledger_http_request_duration_seconds Time to answer a request.",
                  "# TYPE ledger_http_request_duration_seconds histogram"]
        for route, counts in sorted(self.duration_counts.items()):
            label = f'route="{_esc(route)}"'
            total = 0
            for bound, count in zip((*_BUCKETS, float("inf")), counts, strict=True):
                total += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'ledger_http_request_duration_seconds_bucket{{{label},le="{le}"}}'
                             f" {total}")
            lines.append(f"ledger_http_request_duration_seconds_sum{{{label}}}"
                         f" {self.duration_sums[route]:.6f}")
            lines.append(f"ledger_http_request_duration_seconds_count{{{label}}} {total}")
        _family(lines, "ledger_ingest_logs_total", "counter",
                "Logs the gateway forwarded, by what ingest did with them.",
                ((f'outcome="{o}"', self.ingest_logs[o]) for o in ("accepted", "rejected")))
        _family(lines, "ledger_key_cache_lookups_total", "counter",
                "API-key cache lookups by layer (memory, redis) and result (hit, miss).",
                ((f'layer="{layer}",result="{result}"', self.key_cache[(layer, result)])
                 for layer in ("memory", "redis") for result in ("hit", "miss")))
        _family(lines, "ledger_sentry_items_total", "counter",
                "Items of Sentry envelopes received, by type (events become logs).",
                ((f'type="{t}"', n) for t, n in sorted(self.sentry_items.items())))
        current = self.breaker_state()
        _family(lines, "ledger_auth_breaker_state", "gauge",
                "Circuit breaker around the auth daemon: 1 for the current state.",
                ((f'state="{s.value}"', int(s is current)) for s in BreakerState))
        current = self.query_breaker_state()
        _family(lines, "ledger_query_breaker_state", "gauge",
                "Circuit breaker around the query daemon: 1 for the current state.",
                ((f'state="{s.value}"', int(s is current)) for s in BreakerState))
        _family(lines, "ledger_sse_clients", "gauge",
                "Live streams (SSE: notifications and tails) open on this gateway.",
                (("", self.sse_clients()),))
        return "\n".join(lines) + "\n"


def _family(lines: list[str], name: str, kind: str, help_text: str,
            samples: Iterable[tuple[str, int | float]]) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{{{labels}}} {value}" if labels else f"{name} {value}"
              for labels, value in samples]


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsMiddleware:
    """Counts every HTTP request by route template, method and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app dies before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe_request(path, scope["method"], status,
                                         time.perf_counter() - start)


router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics of the gateway",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition format 0.0.4"}},
)
async def get_metrics(request: Request) -> Response:
    """Requests by route and status, logs accepted/rejected, key cache hits, breaker state."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE)
