"""``GET|PUT /api/v1/notifications/preferences``: what an account follows live, per project.

The rules and storage live in ``ledger.core.notification_prefs`` behind the auth daemon; the
gateway only reaches them over gRPC. ``account_preferences`` is also what the notification
stream uses to choose an account's projects and levels.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from ledger.core.events import LEVELS, LOG_TYPES
from ledger.core.notification_prefs import NotificationPreference, parse_preference
from ledger.daemons.gateway.edge.access import RequireAccount
from ledger.daemons.gateway.edge.account_sessions import AccountPrincipal
from ledger.daemons.gateway.edge.principal import AUTH_RESPONSES
from ledger.daemons.gateway.routes.responses import json_response
from ledger.daemons.gateway.schemas.ingest import ErrorResponse
from ledger.daemons.gateway.state import Gateway, get_gateway
from ledger.errors import InvalidInputError

router = APIRouter(prefix="/api/v1", tags=["live"])

MAX_PREFERENCES_PER_REQUEST = 1000


class PreferenceModel(BaseModel):
    """What an account follows live of one project."""

    project_id: str = Field(..., description="The project's id (or, in a PUT, its slug).")
    project_slug: str = Field("", description="The project's slug (answers only).")
    enabled: bool = Field(True, description="False: nothing of this project is streamed.")
    levels: list[str] = Field(["error", "critical"], json_schema_extra={"items": {
        "enum": list(LEVELS)}}, description="Levels that are streamed.")
    log_types: list[str] | None = Field(None, json_schema_extra={"items": {
        "enum": list(LOG_TYPES)}}, description="Log types that are streamed; null: all.")
    updated_at: str | None = Field(None, description="When stored; null: the defaults.")


class PreferencesBody(BaseModel):
    """Preferences to store; projects left out keep theirs."""

    preferences: list[PreferenceModel]


class PreferencesResponse(BaseModel):
    """The preference of every project of the account."""

    preferences: list[PreferenceModel]


DOC_MODELS = [PreferencesBody]


async def account_preferences(gateway: Gateway, account_id: str) -> list[NotificationPreference]:
    """The account's preference for each of its projects (defaults where none is stored)."""
    return await gateway.auth.get_notification_preferences(account_id)


def _body(prefs: list[NotificationPreference]) -> Response:
    return json_response({"preferences": [
        {"project_id": p.project_id, "project_slug": p.project_slug, "enabled": p.enabled,
         "levels": list(p.levels),
         "log_types": None if p.log_types is None else list(p.log_types),
         "updated_at": None if p.updated_at is None else p.updated_at.isoformat()}
        for p in prefs]})


_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    403: {"model": ErrorResponse, "description": "An API key: preferences are an account's"},
}


@router.get("/notifications/preferences", summary="Notification preferences",
            response_model=PreferencesResponse, responses=_RESPONSES)
async def get_preferences(
    request: Request, account: AccountPrincipal = Depends(RequireAccount()),
) -> Response:
    """What the account follows on `/notifications/stream`, for each of its projects."""
    return _body(await account_preferences(get_gateway(request), account.account_id))


@router.put("/notifications/preferences", summary="Change notification preferences",
            response_model=PreferencesResponse,
            responses={**_RESPONSES, 400: {"model": ErrorResponse, "description": "Bad body"},
                       404: {"model": ErrorResponse, "description": "Not your project"}},
            openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/PreferencesBody"}}}}})
async def put_preferences(
    request: Request, account: AccountPrincipal = Depends(RequireAccount()),
) -> Response:
    """Store the listed projects' preferences (the others keep theirs); answer all of them."""
    account_id = account.account_id
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise InvalidInputError("the body must be JSON: {\"preferences\": [...]}") from None
    raw = body.get("preferences") if isinstance(body, dict) else None
    if not isinstance(raw, list) or len(raw) > MAX_PREFERENCES_PER_REQUEST:
        raise InvalidInputError("the body must be {\"preferences\": [{\"project_id\": ...,"
                                " \"levels\": [...]}, ...]} with at most"
                                f" {MAX_PREFERENCES_PER_REQUEST} items")
    prefs = [parse_preference(item) for item in raw]
    gateway = get_gateway(request)
    return _body(await gateway.auth.set_notification_preferences(account_id, prefs))
