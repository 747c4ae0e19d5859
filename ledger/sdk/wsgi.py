"""WSGI middleware (Flask, Django, any WSGI app): one endpoint log per HTTP request.

    app.wsgi_app = LedgerWSGIMiddleware(app.wsgi_app, client=ledger)      # Flask
    application = LedgerWSGIMiddleware(get_wsgi_application(), ledger)    # Django

The route template comes from ``route_of(environ)``: by default Flask's (werkzeug's) matched
rule (``/orders/<int:id>``), found through ``environ["werkzeug.request"]``; Django users pass
``route_of=lambda environ: environ.get("ledger.route")`` and set that key from a view
middleware with ``request.resolver_match.route``. Unknown routes are ``<unmatched>``. The
duration runs until the body has been sent (streamed bodies included). An unhandled
exception is logged and re-raised. No web framework is imported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ledger.sdk.asgi import UNMATCHED
from ledger.sdk.client import Ledger

__all__ = ["LedgerWSGIMiddleware", "capture_flask_exceptions", "werkzeug_route"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def werkzeug_route(environ: Environ) -> str | None:
    """The rule Flask/werkzeug matched for this request, if any."""
    request = environ.get("werkzeug.request")
    rule = getattr(getattr(request, "url_rule", None), "rule", None)
    return rule if isinstance(rule, str) else None


class _Body:
    """The app's response iterable; logs the request once, when the body has been sent
    (iteration ended) or the server closes it, whichever comes first."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self._body = body
        self._done: Callable[[], None] | None = done

    def _finish(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()

    def __iter__(self) -> Iterator[bytes]:
        yield from self._body
        self._finish()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish()


class LedgerWSGIMiddleware:
    """Records each request of a WSGI app as an endpoint log on ``client``.

    Args:
        app: the WSGI application.
        client: the Ledger client; default a new ``Ledger()`` from the environment.
        route_of: returns the route template of a finished request (None: unmatched).
    """

    def __init__(self, app: WSGIApp, client: Ledger | None = None,
                 route_of: Callable[[Environ], str | None] = werkzeug_route) -> None:
        self.app = app
        self.client = client if client is not None else Ledger()
        self.route_of = route_of

    def _route(self, environ: Environ) -> str:
        try:
            return self.route_of(environ) or UNMATCHED
        except Exception:
            return UNMATCHED

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        status = [500]
        route: list[str | None] = [None]

        def start(status_line: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            try:
                status[0] = int(status_line.split(" ", 1)[0])
            except ValueError:
                status[0] = 500
            # Still inside the app's request: Flask clears environ["werkzeug.request"] after.
            route[0] = self._route(environ)
            return start_response(status_line, headers, *exc_info)

        def done() -> None:
            self.client.endpoint(str(environ.get("REQUEST_METHOD", "")),
                                 route[0] or self._route(environ), status[0],
                                 (time.perf_counter() - started) * 1000.0)

        try:
            body = self.app(environ, start)
        except Exception as exc:
            self.client.exception(exc, method=environ.get("REQUEST_METHOD", ""),
                                  route=self._route(environ),
                                  url_path=environ.get("PATH_INFO", ""))
            status[0] = 500
            done()
            raise
        return _Body(body, done)


def capture_flask_exceptions(app: Any, client: Ledger) -> None:
    """Log the exceptions Flask turns into 500 answers itself (they never reach a WSGI
    middleware). Imports Flask only when called."""
    from flask import got_request_exception

    def report(sender: Any, exception: BaseException, **extra: Any) -> None:
        from flask import request

        client.exception(exception, method=request.method,
                         route=request.url_rule.rule if request.url_rule else UNMATCHED,
                         url_path=request.path)

    got_request_exception.connect(report, app, weak=False)
