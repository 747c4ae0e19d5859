"""LedgerError crosses gRPC and comes back as the same class, or the nearest one."""

from __future__ import annotations

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from ledger.core.events import InvalidLog
from ledger.errors import (
    ALL_ERRORS,
    InvalidInputError,
    LedgerError,
    QueueFullError,
    UnavailableError,
)
from ledger.rpc.status import from_rpc_error, grpc_code, trailing_metadata


def _over_the_wire(error: LedgerError) -> AioRpcError:
    return AioRpcError(grpc_code(error), Metadata(), Metadata(*trailing_metadata(error)),
                       error.message)


@pytest.mark.parametrize("cls", [c for c in ALL_ERRORS if c is not LedgerError])
def test_every_error_class_round_trips(cls: type[LedgerError]) -> None:
    back = from_rpc_error(_over_the_wire(cls("why", retry_after=7)), "ingest")
    assert type(back) is cls
    assert back.message == "why"
    assert back.retry_after == 7


def test_queue_full_keeps_its_class_and_retry_after() -> None:
    back = from_rpc_error(_over_the_wire(QueueFullError(retry_after=60)), "ingest")
    assert isinstance(back, QueueFullError) and back.retry_after == 60


def test_an_unknown_subclass_comes_back_as_its_nearest_known_class() -> None:
    error = InvalidLog("level", "level must be one of debug, info, warning, error, critical")
    back = from_rpc_error(_over_the_wire(error), "ingest")
    assert type(back) is InvalidInputError
    assert back.http_status == 400


def test_a_dead_daemon_is_unavailable_not_internal() -> None:
    dead = AioRpcError(grpc.StatusCode.UNAVAILABLE, Metadata(), Metadata(), "connect failed")
    back = from_rpc_error(dead, "auth")
    assert isinstance(back, UnavailableError)
    assert "auth daemon is unavailable" in back.message


def test_a_wrong_internal_token_says_so() -> None:
    refused = AioRpcError(grpc.StatusCode.UNAUTHENTICATED, Metadata(), Metadata(), "wrong")
    assert "LEDGER_INTERNAL_TOKEN" in from_rpc_error(refused, "query").message
