"""`ledger top`: a live dashboard of one project from the cached metrics, or one JSON snapshot."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ledger.cli import flags
from ledger.cli.context import load_settings
from ledger.cli.output import handle_errors, print_json

if TYPE_CHECKING:
    import httpx

ROUTES = {"error_rate": "/api/v1/metrics/error-rate", "log_volume": "/api/v1/metrics/log-volume",
          "top_errors": "/api/v1/metrics/top-errors", "usage": "/api/v1/metrics/usage"}


async def snapshot(http: httpx.AsyncClient, project: str | None = None) -> dict[str, Any]:
    """Every figure the dashboard shows, fetched concurrently from the gateway.

    Raises:
        LedgerError: the gateway refused (its ``detail`` as the message).
    """
    from ledger.cli.api import error_from

    params = {"project_id": project} if project else {}
    paths = {**ROUTES, "slow_routes": "/api/v1/metrics/bottleneck"}
    extra = {"slow_routes": {"statistic": "p95", "limit": "10", "period": "last24h"}}
    answers = await asyncio.gather(*[
        http.get(path, params={**params, **extra.get(name, {})}) for name, path in paths.items()])
    out: dict[str, Any] = {}
    for name, answer in zip(paths, answers, strict=True):
        if answer.status_code != 200:
            raise error_from(answer)
        body = answer.json()
        if name == "usage":
            out[name] = body
        elif name == "slow_routes":
            out[name] = body["routes"]
        else:
            out[name] = body["data"]
    return out


def top(
    project: str | None = flags.option(
        "--project", None, help="Project slug or id (default: the key's project)."),
    url: str | None = flags.option("--url", None),
    api_key: str | None = flags.option("--api-key", None),
    refresh: float = flags.option(
        "--refresh", 5.0, min=1.0, max=600.0, help="Seconds between refreshes."),
    json_output: bool = flags.option("--json", False, help="Print one snapshot as JSON."),
) -> None:
    """A live dashboard of one project: error rate over 24 h, volume by level, top error
    groups with their trend, slowest routes by p95.

    Keys: / filters the tables, r refreshes now, q quits. With --json: one snapshot, printed.
    """
    import httpx

    from ledger.cli.tail import _credential

    with handle_errors():
        settings = load_settings(url=url, api_key=api_key)
        credential = _credential(settings, api_key)

        def client() -> httpx.AsyncClient:
            return httpx.AsyncClient(base_url=str(settings.url).rstrip("/"), timeout=10.0,
                                     headers=credential.headers)

        if json_output:
            async def once() -> dict[str, Any]:
                async with client() as http:
                    return await snapshot(http, project)

            print_json(asyncio.run(once()))
            return
        from ledger.cli.tail import _log_to_file, _project_names
        from ledger.tui.top_app import TopApp

        _log_to_file(settings)
        _, scope = _project_names(settings, project, credential.headers)

        async def run() -> None:
            async with client() as http:
                await TopApp(lambda: snapshot(http, project), scope=scope,
                             refresh_seconds=refresh).run_async()

        asyncio.run(run())
