"""``GroupingService``: a project's fingerprint rules and in-app setting, and group merges.

The gateway has already checked that the caller may change grouping in these projects
(DESIGN §4: an account, or a key with the ``triage`` scope); the project ids bind every call.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from ledger.core import events, grouping_store
from ledger.core.grouping_rules import GroupingConfig, RuleError, parse_rule
from ledger.errors import InvalidInputError, UnavailableError
from ledger.proto import grouping_pb2, grouping_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
#: Test events are checked like ingested ones; the timestamp is set to now when absent.
_TEST_RETENTION_DAYS = 36_525


def _uuid(name: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInputError(f"{name} must be a UUID, got {value[:64]!r}") from None


class GroupingServicer(grouping_pb2_grpc.GroupingServiceServicer):
    """Implements ``ledger.v1.GroupingService`` over the query daemon's logs pool."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise UnavailableError("the logs database is unavailable; try again shortly") from exc

    async def GetGroupingSettings(
        self, request: grouping_pb2.GetGroupingSettingsRequest, context: Context,
    ) -> grouping_pb2.GetGroupingSettingsResponse:
        project_id = _uuid("project_id", request.project_id)
        async with self._connection() as conn:
            settings = await grouping_store.get_settings(conn, project_id, with_history=True)
        return grouping_pb2.GetGroupingSettingsResponse(settings_json=orjson.dumps(settings))

    async def AddFingerprintRule(
        self, request: grouping_pb2.AddFingerprintRuleRequest, context: Context,
    ) -> grouping_pb2.AddFingerprintRuleResponse:
        project_id = _uuid("project_id", request.project_id)
        position = request.position if request.position >= 0 else None
        async with self._connection() as conn:
            settings = await grouping_store.add_rule(conn, project_id, request.rule,
                                                     position=position,
                                                     actor=request.actor or None)
        return grouping_pb2.AddFingerprintRuleResponse(settings_json=orjson.dumps(settings))

    async def RemoveFingerprintRule(
        self, request: grouping_pb2.RemoveFingerprintRuleRequest, context: Context,
    ) -> grouping_pb2.RemoveFingerprintRuleResponse:
        project_id = _uuid("project_id", request.project_id)
        async with self._connection() as conn:
            settings = await grouping_store.remove_rule(conn, project_id, request.index,
                                                        actor=request.actor or None)
        return grouping_pb2.RemoveFingerprintRuleResponse(settings_json=orjson.dumps(settings))

    async def SetInAppRules(
        self, request: grouping_pb2.SetInAppRulesRequest, context: Context,
    ) -> grouping_pb2.SetInAppRulesResponse:
        project_id = _uuid("project_id", request.project_id)
        async with self._connection() as conn:
            settings = await grouping_store.set_in_app(
                conn, project_id, list(request.include), list(request.exclude),
                actor=request.actor or None)
        return grouping_pb2.SetInAppRulesResponse(settings_json=orjson.dumps(settings))

    async def TestFingerprintRules(
        self, request: grouping_pb2.TestFingerprintRulesRequest, context: Context,
    ) -> grouping_pb2.TestFingerprintRulesResponse:
        project_id = _uuid("project_id", request.project_id)
        now = datetime.now(UTC)
        try:
            event = orjson.loads(request.event_json)
        except orjson.JSONDecodeError as exc:
            raise InvalidInputError(f"event is not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise InvalidInputError("event must be a JSON object (a log)")
        event.setdefault("timestamp", now.isoformat())
        event.setdefault("level", "error")
        clean = events.validate_log(event, now=now, retention_days=_TEST_RETENTION_DAYS)
        async with self._connection() as conn:
            config = await grouping_store.load_config(conn, project_id)
        if request.use_rules:
            try:
                rules = tuple(parse_rule(text) for text in request.rules)
            except RuleError as exc:
                raise InvalidInputError(f"rule: {exc}") from None
            config = GroupingConfig(revision=config.revision, rules=rules, in_app=config.in_app,
                                    merges=config.merges)
        record = events.enrich(clean, project_id=project_id, now=now, grouping=config)
        components = record["fingerprint_components"] or {}
        result = {"fingerprint": record["error_fingerprint"],
                  "method": components.get("method"), "components": components,
                  "rule": components.get("rule"), "revision": config.revision,
                  "is_error_event": record["error_fingerprint"] is not None}
        return grouping_pb2.TestFingerprintRulesResponse(result_json=orjson.dumps(result))

    async def MergeErrorGroups(
        self, request: grouping_pb2.MergeErrorGroupsRequest, context: Context,
    ) -> grouping_pb2.MergeErrorGroupsResponse:
        project_ids = [_uuid("project_ids", p) for p in request.project_ids]
        async with self._connection() as conn:
            group = await grouping_store.merge(conn, project_ids, request.target_group_id,
                                               list(request.source_group_ids),
                                               actor=request.actor or None)
        return grouping_pb2.MergeErrorGroupsResponse(group_json=orjson.dumps(group))

    async def UnmergeErrorGroup(
        self, request: grouping_pb2.UnmergeErrorGroupRequest, context: Context,
    ) -> grouping_pb2.UnmergeErrorGroupResponse:
        project_ids = [_uuid("project_ids", p) for p in request.project_ids]
        async with self._connection() as conn:
            group = await grouping_store.unmerge(conn, project_ids, request.target_group_id,
                                                 request.source_group_id,
                                                 actor=request.actor or None)
        return grouping_pb2.UnmergeErrorGroupResponse(group_json=orjson.dumps(group))
