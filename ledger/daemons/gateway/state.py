"""What one gateway holds while it runs: its clients, caches and counters.

Built by the app's lifespan and kept on ``app.state.gateway``; route modules reach it with
``get_gateway(request)`` (or ``Depends(get_gateway)``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from starlette.requests import Request

from ledger.config import Settings
from ledger.daemons.gateway.edge.key_cache import KeyValidator
from ledger.daemons.gateway.edge.rate_limits import RateLimiter
from ledger.daemons.gateway.routes.ingest_batcher import IngestBatcher
from ledger.daemons.gateway.routes.metrics import Metrics
from ledger.rpc.alerts_client import AlertsClient
from ledger.rpc.auth_client import AuthClient
from ledger.rpc.ingest_client import IngestClient
from ledger.rpc.query_client import QueryClient


@dataclass
class Gateway:
    """The running gateway's shared objects (one per process).

    Attributes:
        redis: the one Redis client (bytes responses).
        auth / ingest / query / alerts: one typed gRPC client per daemon.
        batcher: sends ingest requests over ``ingest``, coalescing concurrent ones.
        closing: set when shutdown begins, so that long-lived streams (SSE) can end and let
            in-flight requests finish.
        tasks: background tasks; the daemon stops loudly when one of them dies.
    """

    settings: Settings
    redis: aioredis.Redis
    auth: AuthClient
    ingest: IngestClient
    query: QueryClient
    keys: KeyValidator
    limiter: RateLimiter
    metrics: Metrics
    batcher: IngestBatcher
    alerts: AlertsClient | None = None
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def get_gateway(request: Request) -> Gateway:
    """The gateway serving ``request`` (a FastAPI dependency)."""
    gateway: Gateway = request.app.state.gateway
    return gateway
