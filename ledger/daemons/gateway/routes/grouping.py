"""Grouping: a project's fingerprint rules and in-app setting, and merging error groups.

Reading the setting and testing rules need the ``read`` scope; changing them and merging
groups need an account or a key with the ``triage`` scope (DESIGN §4).
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ledger.daemons.gateway.edge.access import readable_project, readable_project_ids
from ledger.daemons.gateway.edge.principal import ApiKeyPrincipal, Principal, RequirePrincipal
from ledger.daemons.gateway.routes.logs import READ_RESPONSES, GroupId, json_bytes
from ledger.daemons.gateway.schemas.grouping import (
    GroupingSettings,
    InAppBody,
    MergeBody,
    RuleBody,
    RuleTestBody,
    RuleTestResult,
    UnmergeBody,
)
from ledger.daemons.gateway.schemas.queries import ErrorGroupDetail
from ledger.daemons.gateway.state import Gateway

router = APIRouter(prefix="/api/v1", tags=["grouping"])
require_read = RequirePrincipal("read")
require_triage = RequirePrincipal("triage")


def _actor(principal: Principal) -> str:
    if isinstance(principal, ApiKeyPrincipal):
        return f"key {principal.identity.key_id}"
    return f"account {principal.claims.email}"


async def _project(request: Request, principal: Principal, project: str) -> tuple[Gateway, str]:
    gateway: Gateway = request.app.state.gateway
    found = await readable_project(gateway, principal, project)
    return gateway, found.id


@router.get("/projects/{project}/grouping", summary="Show a project's grouping setting",
            response_model=GroupingSettings, responses=READ_RESPONSES)
async def get_grouping(request: Request, project: str,
                       principal: Principal = Depends(require_read)) -> Response:
    """Fingerprint rules, in-app include/exclude, the revision and its history."""
    gateway, project_id = await _project(request, principal, project)
    return json_bytes(await gateway.query.get_grouping_settings(project_id), principal)


@router.post("/projects/{project}/fingerprint-rules", summary="Add a fingerprint rule",
             response_model=GroupingSettings, status_code=201, responses=READ_RESPONSES)
async def add_rule(request: Request, project: str, body: RuleBody,
                   principal: Principal = Depends(require_triage)) -> Response:
    """Add ``matcher:value … -> fingerprint`` (applied at ingest to new events)."""
    gateway, project_id = await _project(request, principal, project)
    found = await gateway.query.add_fingerprint_rule(project_id, body.rule,
                                                     position=body.position,
                                                     actor=_actor(principal))
    return json_bytes(found, principal, status=201)


@router.delete("/projects/{project}/fingerprint-rules/{index}",
               summary="Remove a fingerprint rule", response_model=GroupingSettings,
               responses=READ_RESPONSES)
async def remove_rule(request: Request, project: str, index: int,
                      principal: Principal = Depends(require_triage)) -> Response:
    """Remove the rule at ``index`` (as listed by GET …/grouping)."""
    gateway, project_id = await _project(request, principal, project)
    found = await gateway.query.remove_fingerprint_rule(project_id, index,
                                                        actor=_actor(principal))
    return json_bytes(found, principal)


@router.put("/projects/{project}/in-app", summary="Set the in-app include/exclude prefixes",
            response_model=GroupingSettings, responses=READ_RESPONSES)
async def set_in_app(request: Request, project: str, body: InAppBody,
                     principal: Principal = Depends(require_triage)) -> Response:
    """Which modules, classes or paths are the project's own code (exclude wins)."""
    gateway, project_id = await _project(request, principal, project)
    found = await gateway.query.set_in_app_rules(project_id, body.include, body.exclude,
                                                 actor=_actor(principal))
    return json_bytes(found, principal)


@router.post("/projects/{project}/grouping/test",
             summary="Fingerprint an event with the project's rules",
             response_model=RuleTestResult, responses=READ_RESPONSES)
async def test_rules(request: Request, project: str, body: RuleTestBody,
                     principal: Principal = Depends(require_read)) -> Response:
    """What fingerprint ``event`` would get (with ``rules`` instead of the stored ones)."""
    gateway, project_id = await _project(request, principal, project)
    found = await gateway.query.test_fingerprint_rules(project_id, orjson.dumps(body.event),
                                                       body.rules)
    return json_bytes(found, principal)


@router.post("/error-groups/{group_id}/merge", summary="Merge error groups into this one",
             response_model=ErrorGroupDetail, responses=READ_RESPONSES)
async def merge_groups(request: Request, group_id: GroupId, body: MergeBody,
                       principal: Principal = Depends(require_triage)) -> Response:
    """Merge ``group_ids`` into the group: counts move, later events come here too."""
    gateway: Gateway = request.app.state.gateway
    project_ids = await readable_project_ids(gateway, principal)
    found = await gateway.query.merge_error_groups(project_ids, group_id, body.group_ids,
                                                   actor=_actor(principal))
    return json_bytes(found, principal)


@router.post("/error-groups/{group_id}/unmerge",
             summary="Take a merged group back out of this one",
             response_model=ErrorGroupDetail, responses=READ_RESPONSES)
async def unmerge_group(request: Request, group_id: GroupId, body: UnmergeBody,
                        principal: Principal = Depends(require_triage)) -> Response:
    """Undo a merge: the moved count goes back, later events go to their own group again."""
    gateway: Gateway = request.app.state.gateway
    project_ids = await readable_project_ids(gateway, principal)
    found = await gateway.query.unmerge_error_group(project_ids, group_id, body.group_id,
                                                    actor=_actor(principal))
    return json_bytes(found, principal)
