"""The gateway's long-lived ``IngestStream`` to ingest, over real gRPC and a real ingest daemon.

- many coalesced batches ride one stream, each answered with its own results (by id, whatever
  order they finish in), and everything answered 202 is queued once;
- the gateway keeps at most ``max_in_flight`` batches unanswered, and ingest handles at most
  ``stream.MAX_IN_FLIGHT`` batches of one stream at once (the rest wait in gRPC's flow
  control);
- a gateway with a wrong token gets the same clear error as a unary call.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest
import redis.asyncio as aioredis

from ledger.config import Settings
from ledger.core.rpc_models import IngestRequest
from ledger.daemons.gateway.routes.ingest_batcher import IngestBatcher
from ledger.daemons.ingest import stream as ingest_stream
from ledger.errors import UnavailableError
from ledger.proto import ingest_pb2, ingest_pb2_grpc
from ledger.queue import names
from ledger.rpc.ingest_client import IngestClient
from ledger.rpc.server import create_server
from tests.ingest_support import log, new_project, running_ingest


@pytest.fixture
async def ingest(settings: Settings) -> AsyncIterator[tuple[int, IngestClient]]:
    """Ingest without writers (the queue depth says what was queued); its port, a client."""
    async with running_ingest(settings, ingest_writers=0) as (daemon, client):
        yield daemon.port, client


def single(project_id: str, log_id: str) -> IngestRequest:
    return IngestRequest(project_id=project_id, shape="single",
                         body=orjson.dumps(log(0, log_id=log_id)), retention_days=90,
                         daily_quota=0)


async def test_coalesced_batches_share_one_stream_and_each_gets_its_answer(
        ingest: tuple[int, IngestClient], aredis: aioredis.Redis) -> None:
    _, client = ingest
    batcher = IngestBatcher(client)
    project = new_project()
    ids = [str(uuid.uuid4()) for _ in range(300)]
    bad = {7, 150}  # invalid logs among valid ones: a 400 of their own
    requests = [single(project, i) if n not in bad else IngestRequest(
        project_id=project, shape="single", body=b'{"level": "nope"}', retention_days=90,
        daily_quota=0) for n, i in enumerate(ids)]
    answers = await asyncio.gather(*(batcher.submit(r) for r in requests))
    for n, answer in enumerate(answers):
        if n in bad:
            assert (answer.accepted, answer.rejected) == (0, 1)
        else:
            # Its own answer, not a neighbour's: the id ingest gave is the log's own.
            assert (answer.accepted, list(answer.ids)) == (1, [ids[n]])
    assert 1 < batcher.calls_made < len(requests)  # coalesced, in several batches
    assert batcher.most_in_flight == 1  # one stream: one batch unanswered at a time
    assert [s.opened for s in client.streams] == [1]  # every batch on the same stream
    assert int(await aredis.get(names.queue_depth(project)) or 0) == len(ids) - len(bad)


async def test_batches_sent_at_once_are_matched_to_their_answers(
        ingest: tuple[int, IngestClient]) -> None:
    """Without the batcher's bound: 40 batches written back to back, answered by id."""
    _, client = ingest
    project = new_project()
    batches = [[str(uuid.uuid4()) for _ in range(1 + n % 5)] for n in range(40)]
    stream = client.streams[0]
    answers = await asyncio.gather(*(client.ingest_logs_stream(
        [single(project, i) for i in batch], stream) for batch in batches))
    for batch, results in zip(batches, answers, strict=True):
        assert [list(r.ids) for r in results if not isinstance(r, Exception)] == [
            [i] for i in batch]
    assert stream.opened == 1 and stream.in_flight == 0


async def test_a_wrong_token_is_refused_clearly(ingest: tuple[int, IngestClient]) -> None:
    port, _ = ingest
    wrong = IngestClient(f"127.0.0.1:{port}", secrets.token_urlsafe(8))
    try:
        with pytest.raises(UnavailableError) as refused:
            await wrong.ingest_logs_stream([single(new_project(), str(uuid.uuid4()))])
        assert "LEDGER_INTERNAL_TOKEN" in refused.value.message
    finally:
        await wrong.close()


@contextlib.asynccontextmanager
async def serving(servicer: ingest_pb2_grpc.IngestServiceServicer,
                  ) -> AsyncIterator[IngestClient]:
    """``servicer`` on a real gRPC server of its own (the daemon's interceptors included), and
    a client to it; both closed on the way out."""
    token = secrets.token_urlsafe(8)

    async def healthy() -> dict[str, str]:
        return {}

    server = create_server("ingest", token, healthy)
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = IngestClient(f"127.0.0.1:{port}", token)
    try:
        yield client
    finally:
        await client.close()
        await server.stop(None)


class _Blocking(ingest_pb2_grpc.IngestServiceServicer):
    """An ingest stream whose batches wait for ``release``; counts how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.release = asyncio.Event()
        self.stopping = asyncio.Event()

    async def many(self, batch: ingest_pb2.IngestLogsManyRequest,
                   ) -> ingest_pb2.IngestLogsManyResponse:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        result = ingest_pb2.IngestLogsResult(
            response=ingest_pb2.IngestLogsResponse(accepted=len(batch.requests)))
        return ingest_pb2.IngestLogsManyResponse(results=[result] * len(batch.requests))

    async def IngestStream(self, request_iterator: Any,  # type: ignore[override]
                           context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await ingest_stream.serve_stream(self.many, context, self.stopping)


async def test_ingest_handles_a_bounded_number_of_batches_per_stream() -> None:
    servicer = _Blocking()  # type: ignore[abstract]  # only the stream is served
    async with serving(servicer) as client:
        sends = [asyncio.create_task(client.ingest_logs_stream(
            [single(new_project(), str(uuid.uuid4()))], client.streams[0]))
            for _ in range(3 * ingest_stream.MAX_IN_FLIGHT)]
        for _ in range(100):
            if servicer.running == ingest_stream.MAX_IN_FLIGHT:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # time for any further batch to start, were it allowed to
        assert servicer.most == ingest_stream.MAX_IN_FLIGHT
        assert client.streams[0].in_flight == len(sends)  # written (or writing), unanswered
        servicer.release.set()
        answers = await asyncio.wait_for(asyncio.gather(*sends), 10)
        assert all(r[0].accepted == 1 for r in answers)  # type: ignore[union-attr]


class _FailsOnce(ingest_pb2_grpc.IngestServiceServicer):
    """An ingest stream whose handler fails at its first batch, then serves normally."""

    def __init__(self) -> None:
        self.streams = 0

    async def many(self, batch: ingest_pb2.IngestLogsManyRequest,
                   ) -> ingest_pb2.IngestLogsManyResponse:
        result = ingest_pb2.IngestLogsResult(
            response=ingest_pb2.IngestLogsResponse(accepted=len(batch.requests)))
        return ingest_pb2.IngestLogsManyResponse(results=[result] * len(batch.requests))

    async def IngestStream(self, request_iterator: Any,  # type: ignore[override]
                           context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.streams += 1
        if self.streams == 1:
            await context.read()
            raise RuntimeError("a bug in the stream handler")
        await ingest_stream.serve_stream(self.many, context, asyncio.Event())


async def test_a_stream_that_ends_in_an_internal_error_fails_its_batches_as_unavailable(
        ) -> None:
    """CI once saw a 500 when ingest was killed mid-stream: the torn connection ended the
    stream with INTERNAL. A stream ended by any status without a Ledger error in it (here
    the handler's own failure, which the server's interceptor turns into a bare INTERNAL) is
    a lost stream for the batches on it: a 503 naming ingest, to be retried, and the next
    batch opens a new stream."""
    servicer = _FailsOnce()  # type: ignore[abstract]  # only the stream is served
    async with serving(servicer) as client:
        with pytest.raises(UnavailableError) as lost:
            await client.ingest_logs_stream([single(new_project(), str(uuid.uuid4()))],
                                            client.streams[0])
        assert lost.value.service == "the ingest daemon"
        assert "broke (internal)" in lost.value.message and lost.value.retry_after == 1
        client.streams[0].failed_at = 0.0  # past the reopen pause, without sleeping it out
        answer = await client.ingest_logs_stream([single(new_project(), str(uuid.uuid4()))],
                                                 client.streams[0])
        assert answer[0].accepted == 1  # type: ignore[union-attr]
        assert servicer.streams == 2


async def test_two_ingest_processes_each_get_a_stream_and_one_stopping_leaves_the_other(
        settings: Settings, aredis: aioredis.Redis) -> None:
    """``LEDGER_INGEST_ADDR`` listing two API processes (what ``ledger up`` runs on 2 cores)."""
    async with running_ingest(settings, ingest_writers=0) as (first, _), \
            running_ingest(settings, ingest_writers=0) as (second, _):
        client = IngestClient(f"127.0.0.1:{first.port},127.0.0.1:{second.port}",
                              str(settings.internal_token))
        try:
            batcher = IngestBatcher(client)
            project = new_project()
            answers = await asyncio.gather(*(batcher.submit(single(project, str(uuid.uuid4())))
                                             for _ in range(200)))
            assert all(a.accepted == 1 for a in answers)
            assert [s.opened for s in client.streams] == [1, 1]  # both processes took batches
            assert batcher.most_in_flight == 2  # one per process
            await second.stop()
            accepted = refused = 0
            for _ in range(30):  # one after the other: each batch picks a stream anew
                try:
                    accepted += (await batcher.submit(single(project, str(uuid.uuid4())))).accepted
                except UnavailableError as exc:
                    assert exc.service == "the ingest daemon"
                    refused += 1
            # At most the batch that met the stopped process failed; the rest went to the other.
            assert refused <= 1 and accepted == 30 - refused
            assert int(await aredis.get(names.queue_depth(project)) or 0) == 200 + accepted
        finally:
            await client.close()
