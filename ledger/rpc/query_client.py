"""``QueryClient``: the query daemon's RPCs as methods on core models.

Query answers logs and groups already encoded as JSON (it owns their shape); the gateway
passes those bytes through.
"""

from __future__ import annotations

from typing import Any

from ledger.core.rpc_models import ErrorGroupPage, LogPage
from ledger.proto import grouping_pb2, grouping_pb2_grpc, query_pb2, query_pb2_grpc
from ledger.rpc import convert
from ledger.rpc.channel import CallGuard, DaemonClient


class QueryClient(DaemonClient):
    """Reading logs and error groups, and triaging groups (the query daemon)."""

    target = "query"
    stub_type = query_pb2_grpc.QueryServiceStub

    def __init__(self, addr: str, token: str, *, timeout: float = 10.0,
                 guard: CallGuard | None = None) -> None:
        super().__init__(addr, token, timeout=timeout, guard=guard)
        # The query daemon also serves GroupingService, on the same channel.
        self._grouping: Any = grouping_pb2_grpc.GroupingServiceStub(self.channel)

    async def list_logs(self, project_id: str, *, retention_days: int, params: dict[str, str],
                        errors_only: bool = False) -> LogPage:
        """One page of the project's logs, filtered by the query-string ``params``."""
        answer = await self.call(self.stub.ListLogs, query_pb2.ListLogsRequest(
            project_id=project_id, retention_days=retention_days, params=params,
            errors_only=errors_only))
        return convert.log_page_from_proto(answer)

    async def get_log(self, project_ids: list[str], log_id: str) -> bytes:
        """One log (JSON) of one of ``project_ids``."""
        answer = await self.call(self.stub.GetLog, query_pb2.GetLogRequest(
            project_ids=project_ids, log_id=log_id))
        log_json: bytes = answer.log_json
        return log_json

    async def list_error_groups(self, project_id: str, params: dict[str, str]) -> ErrorGroupPage:
        """One page of the project's error groups."""
        answer = await self.call(self.stub.ListErrorGroups, query_pb2.ListErrorGroupsRequest(
            project_id=project_id, params=params))
        return convert.group_page_from_proto(answer)

    async def get_error_group(self, project_ids: list[str], group_id: str) -> bytes:
        """One group (JSON) with its counts, sample and why it was grouped."""
        answer = await self.call(self.stub.GetErrorGroup, query_pb2.GetErrorGroupRequest(
            project_ids=project_ids, group_id=group_id))
        group_json: bytes = answer.group_json
        return group_json

    async def update_error_group_status(self, project_ids: list[str], group_id: str,
                                        status: str, resolved_in_release: str = "") -> bytes:
        """Resolve, ignore or reopen a group; the group (JSON) afterwards."""
        answer = await self.call(
            self.stub.UpdateErrorGroupStatus,
            query_pb2.UpdateErrorGroupStatusRequest(
                project_ids=project_ids, group_id=group_id, status=status,
                resolved_in_release=resolved_in_release))
        group_json: bytes = answer.group_json
        return group_json

    # -- grouping (GroupingService, served by the same daemon) --------------------------------

    async def get_grouping_settings(self, project_id: str) -> bytes:
        """The project's fingerprint rules, in-app setting, revision and history (JSON)."""
        answer = await self.call(self._grouping.GetGroupingSettings,
                                 grouping_pb2.GetGroupingSettingsRequest(project_id=project_id))
        return bytes(answer.settings_json)

    async def add_fingerprint_rule(self, project_id: str, rule: str, *, position: int | None,
                                   actor: str) -> bytes:
        """Add a rule (at the end, or before ``position``); the new setting (JSON)."""
        answer = await self.call(self._grouping.AddFingerprintRule,
                                 grouping_pb2.AddFingerprintRuleRequest(
                                     project_id=project_id, rule=rule,
                                     position=-1 if position is None else position,
                                     actor=actor))
        return bytes(answer.settings_json)

    async def remove_fingerprint_rule(self, project_id: str, index: int, *, actor: str) -> bytes:
        """Remove the rule at ``index``; the new setting (JSON)."""
        answer = await self.call(self._grouping.RemoveFingerprintRule,
                                 grouping_pb2.RemoveFingerprintRuleRequest(
                                     project_id=project_id, index=index, actor=actor))
        return bytes(answer.settings_json)

    async def set_in_app_rules(self, project_id: str, include: list[str], exclude: list[str],
                               *, actor: str) -> bytes:
        """Replace the in-app include/exclude prefixes; the new setting (JSON)."""
        answer = await self.call(self._grouping.SetInAppRules, grouping_pb2.SetInAppRulesRequest(
            project_id=project_id, include=include, exclude=exclude, actor=actor))
        return bytes(answer.settings_json)

    async def test_fingerprint_rules(self, project_id: str, event_json: bytes,
                                     rules: list[str] | None) -> bytes:
        """The fingerprint an event would get (with ``rules`` instead of the stored ones)."""
        answer = await self.call(self._grouping.TestFingerprintRules,
                                 grouping_pb2.TestFingerprintRulesRequest(
                                     project_id=project_id, event_json=event_json,
                                     rules=rules or [], use_rules=rules is not None))
        return bytes(answer.result_json)

    async def merge_error_groups(self, project_ids: list[str], target_group_id: str,
                                 source_group_ids: list[str], *, actor: str) -> bytes:
        """Merge groups into the target; the target (JSON) with its merge history."""
        answer = await self.call(self._grouping.MergeErrorGroups,
                                 grouping_pb2.MergeErrorGroupsRequest(
                                     project_ids=project_ids, target_group_id=target_group_id,
                                     source_group_ids=source_group_ids, actor=actor))
        return bytes(answer.group_json)

    async def unmerge_error_group(self, project_ids: list[str], target_group_id: str,
                                  source_group_id: str, *, actor: str) -> bytes:
        """Undo a merge; the target (JSON) with its merge history."""
        answer = await self.call(self._grouping.UnmergeErrorGroup,
                                 grouping_pb2.UnmergeErrorGroupRequest(
                                     project_ids=project_ids, target_group_id=target_group_id,
                                     source_group_id=source_group_id, actor=actor))
        return bytes(answer.group_json)
