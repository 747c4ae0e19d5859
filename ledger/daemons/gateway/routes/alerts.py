"""Alert rules, channels, history and snooze of an account's projects (DESIGN §5, §11).

Account tokens only (an API key gets 403); another account's project is a 404 like one that
does not exist. The gateway checks ownership and passes the project to the alerts daemon,
which validates the bodies (a 400 names the field) and never returns a secret after creation.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.responses import Response

from ledger.daemons.gateway.edge.access import RequireAccount, account_projects, owned_project
from ledger.daemons.gateway.edge.account_sessions import AccountPrincipal
from ledger.daemons.gateway.routes.responses import json_response
from ledger.daemons.gateway.schemas.ingest import ErrorResponse
from ledger.daemons.gateway.state import Gateway
from ledger.errors import InvalidInputError, UnavailableError
from ledger.rpc.alerts_client import AlertsClient

router = APIRouter(prefix="/api/v1", tags=["alerts"])
require_account = RequireAccount()


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("A field is invalid (an unknown channel, a non-HTTPS webhook, an SMTP server"
                " that cannot be used)"),
    401: _error("Missing, expired or logged-out access token"),
    403: _error("An API key was sent: these routes need an account"),
    404: _error("Not found among the account's projects"),
    409: _error("The name is taken, or the channel is used by a rule"),
}

RULE_EXAMPLE = {"name": "checkout spikes", "kind": "group_frequency", "threshold": 50,
                "window_minutes": 5, "filters": {"environment": ["production"]},
                "cooldown_seconds": 3600, "channels": ["ops-webhook"]}
CHANNEL_EXAMPLE = {"name": "ops-webhook", "kind": "webhook",
                   "url": "https://hooks.example.com/ledger"}


def _alerts(gateway: Gateway) -> AlertsClient:
    if gateway.alerts is None:
        raise UnavailableError("alerts are not configured on this gateway")
    return gateway.alerts


async def _project(request: Request, account: AccountPrincipal, ref: str) -> tuple[Gateway, str]:
    gateway: Gateway = request.app.state.gateway
    project = await owned_project(gateway, account, ref)
    return gateway, project.id


@router.get("/projects/{ref}/alert-rules", responses=RESPONSES)
async def list_rules(request: Request, ref: str,
                     account: AccountPrincipal = Depends(require_account)) -> Response:
    """The project's alert rules."""
    gateway, project = await _project(request, account, ref)
    return json_response({"rules": await _alerts(gateway).list_rules(project)})


@router.post("/projects/{ref}/alert-rules", status_code=201, responses=RESPONSES)
async def create_rule(request: Request, ref: str,
                      body: dict[str, Any] = Body(..., examples=[RULE_EXAMPLE]),
                      account: AccountPrincipal = Depends(require_account)) -> Response:
    """Add a rule: kind new_group, regression, group_frequency, error_rate or no_logs."""
    gateway, project = await _project(request, account, ref)
    return json_response(await _alerts(gateway).create_rule(project, body), 201)


@router.patch("/projects/{ref}/alert-rules/{rule}", responses=RESPONSES)
async def update_rule(request: Request, ref: str, rule: str,
                      body: dict[str, Any] = Body(...),
                      account: AccountPrincipal = Depends(require_account)) -> Response:
    """Change the fields given (the kind stays)."""
    gateway, project = await _project(request, account, ref)
    return json_response(await _alerts(gateway).update_rule(project, rule, body))


@router.delete("/projects/{ref}/alert-rules/{rule}", responses=RESPONSES)
async def delete_rule(request: Request, ref: str, rule: str,
                      account: AccountPrincipal = Depends(require_account)) -> Response:
    """Remove a rule (its history stays)."""
    gateway, project = await _project(request, account, ref)
    return json_response(await _alerts(gateway).delete_rule(project, rule))


@router.get("/projects/{ref}/alert-channels", responses=RESPONSES)
async def list_channels(request: Request, ref: str,
                        account: AccountPrincipal = Depends(require_account)) -> Response:
    """The project's channels (never their secrets)."""
    gateway, project = await _project(request, account, ref)
    return json_response({"channels": await _alerts(gateway).list_channels(project)})


@router.post("/projects/{ref}/alert-channels", status_code=201, responses=RESPONSES)
async def create_channel(request: Request, ref: str,
                         body: dict[str, Any] = Body(..., examples=[CHANNEL_EXAMPLE]),
                         account: AccountPrincipal = Depends(require_account)) -> Response:
    """Add a webhook, slack or email channel; a webhook's secret is in this answer only."""
    gateway, project = await _project(request, account, ref)
    return json_response(await _alerts(gateway).create_channel(project, body), 201)


@router.delete("/projects/{ref}/alert-channels/{channel}", responses=RESPONSES)
async def delete_channel(request: Request, ref: str, channel: str,
                         account: AccountPrincipal = Depends(require_account)) -> Response:
    """Remove a channel that no rule uses."""
    gateway, project = await _project(request, account, ref)
    return json_response(await _alerts(gateway).delete_channel(project, channel))


@router.post("/projects/{ref}/alert-channels/{channel}/test", responses=RESPONSES)
async def test_channel(request: Request, ref: str, channel: str,
                       account: AccountPrincipal = Depends(require_account)) -> Response:
    """Send a real test message now; the answer says what the receiver answered."""
    gateway, project = await _project(request, account, ref)
    return json_response(await _alerts(gateway).test_channel(project, channel))


@router.get("/alerts/history", responses=RESPONSES)
async def history(request: Request,
                  project_id: str | None = Query(None, description="Id or slug; default: all"),
                  rule: str | None = Query(None, description="A rule id or name"),
                  since: str | None = Query(None, description="ISO-8601, or a duration: 2h"),
                  limit: int = Query(50, ge=1, le=500),
                  account: AccountPrincipal = Depends(require_account)) -> Response:
    """Alerts that fired, newest first, with each delivery and its attempts."""
    gateway: Gateway = request.app.state.gateway
    if project_id:
        projects = [(await owned_project(gateway, account, project_id)).id]
    else:
        projects = [p.id for p in await account_projects(gateway, account.account_id)]
    found = await _alerts(gateway).history(projects, rule=rule, since=since, limit=limit)
    return json_response({"alerts": found})


@router.post("/projects/{ref}/alerts/snooze", responses=RESPONSES)
async def snooze(request: Request, ref: str,
                 body: dict[str, Any] = Body(..., examples=[{"target": "checkout spikes",
                                                             "duration": "2h"}]),
                 account: AccountPrincipal = Depends(require_account)) -> Response:
    """Snooze a rule (id or name) or an error group (id) for a duration (30m, 2h, 1d)."""
    gateway, project = await _project(request, account, ref)
    target, duration = str(body.get("target") or ""), body.get("duration")
    if not target or not isinstance(duration, str) or not duration:
        raise InvalidInputError("send {\"target\": <rule or group>, \"duration\": \"2h\"}")
    return json_response(await _alerts(gateway).snooze(project, target, duration))


@router.post("/projects/{ref}/alerts/unsnooze", responses=RESPONSES)
async def unsnooze(request: Request, ref: str,
                   body: dict[str, Any] = Body(..., examples=[{"target": "checkout spikes"}]),
                   account: AccountPrincipal = Depends(require_account)) -> Response:
    """End the snooze of a rule or an error group."""
    gateway, project = await _project(request, account, ref)
    target = str(body.get("target") or "")
    if not target:
        raise InvalidInputError("send {\"target\": <rule or group>}")
    return json_response(await _alerts(gateway).snooze(project, target, None))
