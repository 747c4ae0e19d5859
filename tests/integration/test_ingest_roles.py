"""Ingest's roles in process, over real gRPC, Redis and PostgreSQL: an API-only daemon queues
and stores nothing, a writer-only daemon stores and serves only its health check, and one
client whose address list names a dead copy sends every call to the live one."""

from __future__ import annotations

import pytest

from ledger.config import Settings
from ledger.errors import LedgerError
from ledger.rpc.ingest_client import IngestClient
from tests.ingest_support import (
    count_logs,
    eventually,
    log,
    new_project,
    queue_depth,
    running_ingest,
    send,
)
from tests.ports import free_port


async def test_api_queues_and_a_writer_process_stores(settings: Settings) -> None:
    url = str(settings.logs_database_url)
    project = new_project()
    async with running_ingest(settings, ingest_role="api") as (api, client):
        assert api.writers == []
        health = await client.check_health()
        assert health.healthy and "writers" not in health.checks
        answer = await send(client, project, {"logs": [log(i) for i in range(50)]})
        assert answer.accepted == 50
        assert queue_depth(str(settings.redis_url), project) == 50  # an API process stores nothing
        async with running_ingest(settings, ingest_role="writer") as (writer, writer_client):
            assert len(writer.writers) == settings.ingest_writers
            # Each writer's consumer name carries this process's own port.
            assert {w.name.rsplit(":", 2)[1] for w in writer.writers} == {str(writer.port)}
            health = await writer_client.check_health()
            assert health.healthy and health.checks["writers"] == "ok"
            with pytest.raises(LedgerError):  # no IngestService on a writer process
                await send(writer_client, project, {"logs": [log()]})
            await eventually(lambda: count_logs(url, project) == 50)
        assert queue_depth(str(settings.redis_url), project) == 0


async def test_calls_skip_an_address_where_no_process_answers(settings: Settings) -> None:
    project = new_project()
    async with running_ingest(settings, ingest_role="api") as (api, _):
        # The first address has no process behind it (a killed copy): round-robin sends
        # every call to the one that is up; none fails.
        client = IngestClient(f"127.0.0.1:{free_port()},127.0.0.1:{api.port}",
                              str(settings.internal_token))
        try:
            for i in range(10):
                assert (await send(client, project, {"logs": [log(i)]})).accepted == 1
        finally:
            await client.close()
    assert queue_depth(str(settings.redis_url), project) == 10
