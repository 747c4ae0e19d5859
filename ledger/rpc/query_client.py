"""``QueryClient``: the query daemon's RPCs as methods on core models.

Query answers logs and groups already encoded as JSON (it owns their shape); the gateway
passes those bytes through.
"""

from __future__ import annotations

from ledger.core.rpc_models import ErrorGroupPage, LogPage
from ledger.proto import query_pb2, query_pb2_grpc
from ledger.rpc import convert
from ledger.rpc.channel import DaemonClient


class QueryClient(DaemonClient):
    """Reading logs and error groups, and triaging groups (the query daemon)."""

    target = "query"
    stub_type = query_pb2_grpc.QueryServiceStub

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
