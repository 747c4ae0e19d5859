"""The lean path: a few hot POST routes served ahead of FastAPI's generic layers.

A single-log request spent a third of the gateway's CPU in the generic layers (server error,
telemetry and body-limit middlewares, exception middleware, router, FastAPI's dependency
solving), measured with py-spy. So the routes a module lists in ``LEAN_ROUTES`` are answered
by their Starlette endpoint directly, and everything else goes through the full stack.

The one rule that keeps the bypass honest: **a cross-cutting concern is added with
``app.add_middleware`` or ``app.add_exception_handler``, and nothing else.** The lean path is
built from those same two registries (``app.user_middleware`` in the same order, and the
handlers looked up by exception class as Starlette's ``ExceptionMiddleware`` does), so a
concern added later (request ids, CORS, ...) reaches the lean routes without anyone
remembering them. What the lean path skips is only Starlette's and FastAPI's own layers
(``ServerErrorMiddleware``, whose 500 answer ``InternalErrorMiddleware`` gives instead; the
body limit, the routes read their bodies with their own caps; telemetry, which is off).
``tests/integration/test_gateway_hot_paths.py`` fails if a concern misses the lean routes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

#: Starlette's exception handler signature (handlers may be sync or async in general; ours
#: are async, and the lean path calls only async ones).
Handler = Callable[[Request, Exception], Any]


class HotPaths:
    """Dispatches the lean routes to ``lean`` (the app's concerns around the endpoint).

    Args:
        app: the full middleware stack, for every other request.
        routes: the lean routes (POST only).
        concerns: the app's user middleware, outermost first (``app.user_middleware``).
        handlers: the app's exception handlers (``app.exception_handlers``).
    """

    def __init__(self, app: ASGIApp, routes: Sequence[Route], concerns: Sequence[Any],
                 handlers: dict[Any, Handler]) -> None:
        self.app = app
        self.routes = {route.path: route for route in routes if not route.param_convertors}
        # Routes with path parameters (Sentry's /api/<number>/envelope/) are matched after the
        # exact paths, and never for the /api/v1/ paths, which cannot be theirs.
        self.patterns = [route for route in routes if route.param_convertors]
        self.concerns = [middleware.cls for middleware in concerns]
        self._handlers = handlers
        lean: ASGIApp = self._serve
        for cls, args, kwargs in reversed(list(concerns)):
            lean = cls(lean, *args, **kwargs)
        self.lean = lean

    def _route(self, scope: Scope) -> Route | None:
        path: str = scope["path"]
        route = self.routes.get(path)
        if route is not None or not self.patterns or path.startswith("/api/v1/"):
            return route
        for pattern in self.patterns:
            match, child = pattern.matches(scope)
            if match is Match.FULL:
                scope.update(child)  # path_params
                return pattern
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self._route(scope)
            if route is not None:
                scope["route"] = route  # the metrics label, as the router sets it
                await self.lean(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            if cls in self._handlers:
                return self._handlers[cls]
        return None

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: Route = scope["route"]
        request = Request(scope, receive)
        try:
            response: Response = await route.endpoint(request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise  # InternalErrorMiddleware (a concern) answers 500
            response = await handler(request, exc)
        await response(scope, receive, send)


def install(app: Starlette, routes: Sequence[Route]) -> None:
    """Serve ``routes`` on the lean path of ``app`` (call after every concern is added)."""
    build_stack = app.build_middleware_stack

    def build_with_hot_paths() -> ASGIApp:
        # Built when the app first serves, so it sees every concern added until then.
        return HotPaths(build_stack(), routes, app.user_middleware, app.exception_handlers)

    app.build_middleware_stack = build_with_hot_paths  # type: ignore[method-assign]
