"""``AlertsService``: rules, channels, history and snooze of the project the gateway checked."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
from psycopg_pool import AsyncConnectionPool

from ledger.core.alerts import channels, fields, history, manage, rules
from ledger.errors import InvalidInputError
from ledger.proto import alerts_pb2, alerts_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
MAX_BODY_BYTES = 64 * 1024


def _body(raw: str) -> Any:
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInputError("the body is too large")
    try:
        return orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        raise InvalidInputError("the body is not valid JSON") from None


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class AlertsServicer(alerts_pb2_grpc.AlertsServiceServicer):
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def ListAlertRules(self, request: alerts_pb2.ListAlertRulesRequest,
                             context: Context) -> alerts_pb2.ListAlertRulesResponse:
        project = fields.uuid_text(request.project_id, "project_id")
        async with self.pool.connection() as conn:
            found = await rules.list_for(conn, project)
        return alerts_pb2.ListAlertRulesResponse(rules_json=_json([r.public() for r in found]))

    async def CreateAlertRule(self, request: alerts_pb2.CreateAlertRuleRequest,
                              context: Context) -> alerts_pb2.CreateAlertRuleResponse:
        project = fields.uuid_text(request.project_id, "project_id")
        async with self.pool.connection() as conn:
            rule = await manage.create_rule(conn, project, _body(request.rule_json))
        return alerts_pb2.CreateAlertRuleResponse(rule_json=_json(rule))

    async def UpdateAlertRule(self, request: alerts_pb2.UpdateAlertRuleRequest,
                              context: Context) -> alerts_pb2.UpdateAlertRuleResponse:
        project = fields.uuid_text(request.project_id, "project_id")
        async with self.pool.connection() as conn:
            rule = await manage.update_rule(conn, project, request.rule,
                                            _body(request.changes_json))
        return alerts_pb2.UpdateAlertRuleResponse(rule_json=_json(rule))

    async def DeleteAlertRule(self, request: alerts_pb2.DeleteAlertRuleRequest,
                              context: Context) -> alerts_pb2.DeleteAlertRuleResponse:
        project = fields.uuid_text(request.project_id, "project_id")
        async with self.pool.connection() as conn:
            rule = await manage.remove_rule(conn, project, request.rule)
        return alerts_pb2.DeleteAlertRuleResponse(rule_json=_json(rule))

    async def ListAlertChannels(self, request: alerts_pb2.ListAlertChannelsRequest,
                                context: Context) -> alerts_pb2.ListAlertChannelsResponse:
        project = fields.uuid_text(request.project_id, "project_id")
        async with self.pool.connection() as conn:
            found = await channels.list_for(conn, project)
        return alerts_pb2.ListAlertChannelsResponse(
            channels_json=_json([c.public() for c in found]))

    async def CreateAlertChannel(self, request: alerts_pb2.CreateAlertChannelRequest,
                                 context: Context) -> alerts_pb2.CreateAlertChannelResponse:
        project = fields.uuid_text(request.project_id, "project_id")
        async with self.pool.connection() as conn:
            channel = await manage.create_channel(conn, project, _body(request.channel_json))
        return alerts_pb2.CreateAlertChannelResponse(channel_json=_json(channel))

    async def DeleteAlertChannel(self, request: alerts_pb2.DeleteAlertChannelRequest,
                                 context: Context) -> alerts_pb2.DeleteAlertChannelResponse:
        project = fields.uuid_text(request.project_id, "project_id")
        async with self.pool.connection() as conn, conn.transaction():
            channel = await channels.delete(conn, project, request.channel)
        return alerts_pb2.DeleteAlertChannelResponse(channel_json=_json(channel.public()))

    async def TestAlertChannel(self, request: alerts_pb2.TestAlertChannelRequest,
                               context: Context) -> alerts_pb2.TestAlertChannelResponse:
        project = fields.uuid_text(request.project_id, "project_id")
        async with self.pool.connection() as conn:
            result = await manage.test_channel(conn, project, request.channel)
        return alerts_pb2.TestAlertChannelResponse(result_json=_json(result))

    async def ListAlertHistory(self, request: alerts_pb2.ListAlertHistoryRequest,
                               context: Context) -> alerts_pb2.ListAlertHistoryResponse:
        projects = [fields.uuid_text(p, "project_id") for p in request.project_ids]
        async with self.pool.connection() as conn:
            found = await manage.list_history(conn, projects, rule=request.rule or None,
                                              since=request.since or None,
                                              limit=request.limit or history.DEFAULT_LIMIT)
        return alerts_pb2.ListAlertHistoryResponse(alerts_json=_json(found))

    async def SnoozeAlerts(self, request: alerts_pb2.SnoozeAlertsRequest,
                           context: Context) -> alerts_pb2.SnoozeAlertsResponse:
        project = fields.uuid_text(request.project_id, "project_id")
        async with self.pool.connection() as conn:
            snoozed = await rules.snooze(conn, project, request.target,
                                         request.duration or None)
        return alerts_pb2.SnoozeAlertsResponse(snoozed_json=_json(snoozed.public()))
