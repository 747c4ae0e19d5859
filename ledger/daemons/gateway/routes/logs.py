"""``GET /logs`` and ``GET /logs/{id}``: reading logs back (DESIGN §5).

Parameters are forwarded as sent and validated once, in the query daemon (a 400 names the
parameter). The page comes back as JSON bytes and is embedded in the answer without decoding.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Request
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from ledger.daemons.gateway.edge.access import readable_project, readable_project_ids
from ledger.daemons.gateway.edge.principal import AUTH_RESPONSES, Principal, RequirePrincipal
from ledger.daemons.gateway.schemas.ingest import ErrorResponse
from ledger.daemons.gateway.schemas.queries import LOG_PARAMETERS, LogPage, StoredLog
from ledger.daemons.gateway.state import Gateway


class HexIdConvertor(Convertor[str]):
    """A whole UUID or a prefix of one: hex digits and dashes.

    ``/logs/{id}`` shares its parent with ``/logs/tail``, and the router that holds a route
    is not the one deciding the order: only an id-shaped segment may reach ``get_log``.
    """

    regex = "[0-9a-fA-F-]{1,36}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("hexid", HexIdConvertor())

#: An error group or log id in a path: the whole UUID or a unique prefix (core/id_prefixes.py).
GroupId = Annotated[str, Path(max_length=64, description="The whole id, or its first 6+"
                                                         " characters when they are unique")]

router = APIRouter(prefix="/api/v1", tags=["logs"])
require_read = RequirePrincipal("read")

READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "A parameter is invalid (it is named)"},
    404: {"model": ErrorResponse, "description": "Not found among the caller's projects"},
    **AUTH_RESPONSES,
}


def query_params(request: Request) -> dict[str, str]:
    """The query string as one value per name (repeated names joined with commas)."""
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        params[name] = f"{params[name]},{value}" if name in params else value
    return params


def json_bytes(body: bytes, principal: Principal, status: int = 200) -> Response:
    """An already-encoded JSON answer, with the key's rate-limit headers."""
    return Response(body, status_code=status, media_type="application/json",
                    headers=principal.rate_headers())


async def log_page(request: Request, principal: Principal, *, errors_only: bool) -> Response:
    """One page of logs (or of error logs) of the project the caller may read."""
    gateway: Gateway = request.app.state.gateway
    params = query_params(request)
    project = await readable_project(gateway, principal, params.pop("project_id", None))
    page = await gateway.query.list_logs(project.id, retention_days=project.retention_days,
                                         params=params, errors_only=errors_only)
    body = orjson.dumps({
        "logs": orjson.Fragment(page.logs_json), "total": page.total,
        "total_exact": page.total_exact, "has_more": page.has_more,
        "next_cursor": page.next_cursor or None,
    })
    return json_bytes(body, principal)


@router.get(
    "/logs",
    summary="List logs",
    response_model=LogPage,
    responses=READ_RESPONSES,
    openapi_extra={"parameters": LOG_PARAMETERS},
)
async def list_logs(request: Request,
                    principal: Principal = Depends(require_read)) -> Response:
    """Logs of one project, newest first, filtered and paged (keyset ``cursor`` or ``offset``)."""
    return await log_page(request, principal, errors_only=False)


@router.get(
    "/logs/{log_id:hexid}",
    summary="Show one log",
    response_model=StoredLog,
    responses=READ_RESPONSES,
)
async def get_log(request: Request, log_id: str,
                  principal: Principal = Depends(require_read)) -> Response:
    """One log by id, if it belongs to a project the caller may read."""
    gateway: Gateway = request.app.state.gateway
    project_ids = await readable_project_ids(gateway, principal)
    return json_bytes(await gateway.query.get_log(project_ids, log_id), principal)
