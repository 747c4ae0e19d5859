"""`ledger top`: a live dashboard of one project (or all of an account's) from the cached
metrics, or one JSON snapshot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ledger.cli import credentials, flags
from ledger.cli.context import load_settings
from ledger.cli.output import handle_errors, print_json
from ledger.errors import InvalidInputError

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
    all_projects: bool = flags.option("--all-projects", False),
    json_output: bool = flags.option("--json", False, help="Print one snapshot as JSON."),
) -> None:
    """A live dashboard of one project (or, with --all-projects, of every project of your
    account): error rate over 24 h, volume by level, top error groups with their trend,
    slowest routes by p95.

    Keys: / filters the tables, r refreshes now, q quits. With --json: one snapshot, printed.
    """
    import httpx

    from ledger.cli.tail import _credential
    from ledger.cli.top_all import snapshot_all

    with handle_errors():
        settings = load_settings(url=url, api_key=api_key)
        credential = _credential(settings, api_key)
        if all_projects and (credential.is_key or project):
            raise InvalidInputError(
                "--all-projects reads every project of an account: run `ledger login` (an"
                " API key reads its own project only) and leave out --project")

        def client() -> httpx.AsyncClient:
            return httpx.AsyncClient(base_url=str(settings.url).rstrip("/"), timeout=10.0,
                                     headers=credential.headers)

        def fetcher(http: httpx.AsyncClient) -> Callable[[], Awaitable[dict[str, Any]]]:
            current = credential

            async def fetch() -> dict[str, Any]:
                nonlocal current
                # A login's access token lasts 15 minutes; the dashboard runs for hours.
                current = await asyncio.to_thread(credentials.refresh, current)
                http.headers.update(current.headers)
                return await (snapshot_all(http) if all_projects else snapshot(http, project))

            return fetch

        if json_output:
            async def once() -> dict[str, Any]:
                async with client() as http:
                    return await fetcher(http)()

            print_json(asyncio.run(once()))
            return
        from ledger.cli.tail import _log_to_file, _project_names
        from ledger.tui.top_app import TopApp

        _log_to_file(settings)
        scope = "all projects" if all_projects else _project_names(
            settings, project, credential.headers)[1]

        async def run() -> None:
            async with client() as http:
                await TopApp(fetcher(http), scope=scope, refresh_seconds=refresh).run_async()

        asyncio.run(run())
