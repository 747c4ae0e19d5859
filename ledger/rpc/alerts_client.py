"""``AlertsClient``: the typed client of the alerts daemon (plain dicts in and out).

Errors come back as the ``LedgerError`` the daemon raised (``DaemonClient.call``), so the
gateway answers the same 400/404/409 a direct call would have. Rules, channels and history are
JSON-shaped dicts (the REST shape, owned by ``ledger.core.alerts``), passed through as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ledger.proto import alerts_pb2, alerts_pb2_grpc
from ledger.rpc.channel import DaemonClient

#: Creating an e-mail channel connects to its SMTP server, and a test sends a message: both
#: wait on a remote server (10 s timeouts there), so they get more than the default deadline.
SLOW_TIMEOUT_SECONDS = 25.0


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class AlertsClient(DaemonClient):
    """Rules, channels, history and snooze (the alerts daemon)."""

    target = "alerts"
    stub_type = alerts_pb2_grpc.AlertsServiceStub

    async def list_rules(self, project_id: str) -> list[dict[str, Any]]:
        reply = await self.call(self.stub.ListAlertRules,
                                       alerts_pb2.ListAlertRulesRequest(project_id=project_id))
        return list(orjson.loads(reply.rules_json))

    async def create_rule(self, project_id: str, body: Any) -> dict[str, Any]:
        reply = await self.call(self.stub.CreateAlertRule, alerts_pb2.CreateAlertRuleRequest(
            project_id=project_id, rule_json=_dumps(body)))
        return dict(orjson.loads(reply.rule_json))

    async def update_rule(self, project_id: str, rule: str,
                          changes: Mapping[str, Any]) -> dict[str, Any]:
        reply = await self.call(self.stub.UpdateAlertRule, alerts_pb2.UpdateAlertRuleRequest(
            project_id=project_id, rule=rule, changes_json=_dumps(changes)))
        return dict(orjson.loads(reply.rule_json))

    async def delete_rule(self, project_id: str, rule: str) -> dict[str, Any]:
        reply = await self.call(self.stub.DeleteAlertRule, alerts_pb2.DeleteAlertRuleRequest(
            project_id=project_id, rule=rule))
        return dict(orjson.loads(reply.rule_json))

    async def list_channels(self, project_id: str) -> list[dict[str, Any]]:
        reply = await self.call(
            self.stub.ListAlertChannels,
            alerts_pb2.ListAlertChannelsRequest(project_id=project_id))
        return list(orjson.loads(reply.channels_json))

    async def create_channel(self, project_id: str, body: Any) -> dict[str, Any]:
        reply = await self.call(
            self.stub.CreateAlertChannel,
            alerts_pb2.CreateAlertChannelRequest(project_id=project_id,
                                                 channel_json=_dumps(body)),
            timeout=SLOW_TIMEOUT_SECONDS)
        return dict(orjson.loads(reply.channel_json))

    async def delete_channel(self, project_id: str, channel: str) -> dict[str, Any]:
        reply = await self.call(
            self.stub.DeleteAlertChannel,
            alerts_pb2.DeleteAlertChannelRequest(project_id=project_id, channel=channel))
        return dict(orjson.loads(reply.channel_json))

    async def test_channel(self, project_id: str, channel: str) -> dict[str, Any]:
        reply = await self.call(
            self.stub.TestAlertChannel,
            alerts_pb2.TestAlertChannelRequest(project_id=project_id, channel=channel),
            timeout=SLOW_TIMEOUT_SECONDS)
        return dict(orjson.loads(reply.result_json))

    async def history(self, project_ids: list[str], *, rule: str | None = None,
                      since: str | None = None, limit: int = 0) -> list[dict[str, Any]]:
        reply = await self.call(
            self.stub.ListAlertHistory,
            alerts_pb2.ListAlertHistoryRequest(project_ids=project_ids, rule=rule or "",
                                               since=since or "", limit=limit))
        return list(orjson.loads(reply.alerts_json))

    async def snooze(self, project_id: str, target: str,
                     duration: str | None) -> dict[str, Any]:
        reply = await self.call(
            self.stub.SnoozeAlerts,
            alerts_pb2.SnoozeAlertsRequest(project_id=project_id, target=target,
                                           duration=duration or ""))
        return dict(orjson.loads(reply.snoozed_json))
