"""Errors: ``GET /errors/list`` and the error groups (list, show, triage) of DESIGN §5."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ledger.daemons.gateway.edge.access import readable_project, readable_project_ids
from ledger.daemons.gateway.edge.principal import Principal, RequirePrincipal
from ledger.daemons.gateway.routes.logs import (
    READ_RESPONSES,
    GroupId,
    json_bytes,
    log_page,
    query_params,
)
from ledger.daemons.gateway.schemas.queries import (
    GROUP_PARAMETERS,
    LOG_PARAMETERS,
    ErrorGroup,
    ErrorGroupDetail,
    ErrorGroupPage,
    LogPage,
    StatusChange,
)
from ledger.daemons.gateway.state import Gateway

router = APIRouter(prefix="/api/v1", tags=["errors"])
require_read = RequirePrincipal("read")
# Changing a group's status is a decision, not a read (DESIGN §4): a key needs the triage scope.
require_triage = RequirePrincipal("triage")


@router.get(
    "/errors/list",
    summary="List error logs",
    response_model=LogPage,
    responses=READ_RESPONSES,
    openapi_extra={"parameters": LOG_PARAMETERS},
)
async def list_errors(request: Request,
                      principal: Principal = Depends(require_read)) -> Response:
    """Error and critical logs, with the filters and paging of ``GET /logs``."""
    return await log_page(request, principal, errors_only=True)


@router.get(
    "/error-groups",
    summary="List error groups",
    response_model=ErrorGroupPage,
    responses=READ_RESPONSES,
    openapi_extra={"parameters": GROUP_PARAMETERS},
)
async def list_groups(request: Request,
                      principal: Principal = Depends(require_read)) -> Response:
    """A project's error groups, by last seen (default), event count or first seen."""
    gateway: Gateway = request.app.state.gateway
    params = query_params(request)
    project = await readable_project(gateway, principal, params.pop("project_id", None))
    page = await gateway.query.list_error_groups(project.id, params)
    body = orjson.dumps({"error_groups": orjson.Fragment(page.groups_json),
                         "total": page.total, "has_more": page.has_more})
    return json_bytes(body, principal)


@router.get(
    "/error-groups/{group_id}",
    summary="Show an error group",
    response_model=ErrorGroupDetail,
    responses=READ_RESPONSES,
)
async def get_group(request: Request, group_id: GroupId,
                    principal: Principal = Depends(require_read)) -> Response:
    """A group with counts, first/last seen, status, a sample event and why it was grouped."""
    gateway: Gateway = request.app.state.gateway
    project_ids = await readable_project_ids(gateway, principal)
    return json_bytes(await gateway.query.get_error_group(project_ids, group_id),
                      principal)


@router.patch(
    "/error-groups/{group_id}/status",
    summary="Resolve, ignore or reopen an error group",
    response_model=ErrorGroup,
    responses=READ_RESPONSES,
)
async def set_group_status(request: Request, group_id: GroupId, change: StatusChange,
                           principal: Principal = Depends(require_triage)) -> Response:
    """Set ``status``; ``resolved`` stamps ``resolved_at`` and may carry ``resolved_in_release``."""
    gateway: Gateway = request.app.state.gateway
    project_ids = await readable_project_ids(gateway, principal)
    updated = await gateway.query.update_error_group_status(
        project_ids, group_id, change.status, change.resolved_in_release or "")
    return json_bytes(updated, principal)
