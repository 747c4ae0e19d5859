"""ASGI middleware (FastAPI, Starlette, any ASGI app): one endpoint log per HTTP request.

    app.add_middleware(LedgerMiddleware, client=ledger)      # FastAPI / Starlette
    app = LedgerMiddleware(app, client=ledger)               # any ASGI app

The path recorded is the route template (``/orders/{id}``, not ``/orders/42``), read from
``scope["route"]`` that Starlette's router sets, with the prefix of any ``Mount``; a request
that matched no route is recorded as ``<unmatched>`` so that scanners do not create one
endpoint per URL. An unhandled exception is logged (type, message, trace) and re-raised, and
its request counts as a 500. No web framework is imported.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ledger.sdk.client import Ledger

__all__ = ["UNMATCHED", "LedgerMiddleware", "route_template"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "<unmatched>"


def route_template(scope: Scope, root_path: str) -> str:
    """The template of the route that served ``scope`` (``UNMATCHED`` when none did)."""
    route = scope.get("route")
    template = getattr(route, "path", None) or getattr(route, "path_format", None)
    if not isinstance(template, str):
        return UNMATCHED
    # A Mount adds its (concrete) prefix to root_path; the inner route's path follows it.
    mounted = str(scope.get("root_path", ""))[len(root_path):]
    return (mounted + template) or "/"


class LedgerMiddleware:
    """Records each HTTP request as an endpoint log on ``client``.

    Args:
        app: the ASGI application.
        client: the Ledger client; default a new ``Ledger()`` from the environment.
    """

    def __init__(self, app: ASGIApp, client: Ledger | None = None) -> None:
        self.app = app
        self.client = client if client is not None else Ledger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = str(scope.get("root_path", ""))
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message.get("type") == "http.response.start":
                status = int(message.get("status", 500))
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            if isinstance(exc, Exception):
                self.client.exception(exc, method=scope.get("method", ""),
                                      route=route_template(scope, root_path),
                                      url_path=scope.get("path", ""))
            status = 500
            raise
        finally:
            self.client.endpoint(
                str(scope.get("method", "")), route_template(scope, root_path), status,
                (time.perf_counter() - started) * 1000.0)
