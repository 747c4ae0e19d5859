"""The port picker of a local stack: no port handed out twice, none a setting already names."""

from __future__ import annotations

import socket

import pytest

from ledger.config import Settings
from ledger.daemons.ports import PortPicker, named_ports
from tests.ports import free_port


def test_the_settings_name_every_daemon_port_and_each_of_a_list_of_addresses() -> None:
    settings = Settings(ingest_addr="127.0.0.1:6001,127.0.0.1:6002",
                        query_metrics_listen="127.0.0.1:7001")
    ports = named_ports(settings)
    assert {8000, 50051, 50052, 50053, 50054, 6001, 6002, 7001} <= ports


def test_a_configured_grpc_port_the_kernel_calls_free_is_never_handed_out() -> None:
    # What broke `ledger up --processes`: bind-port-0 returned 50051 (auth's port, not yet
    # bound), it became the query metrics port, and auth took it first.
    draws = iter([50051, 50053, 41000, 41000, 41001])
    picker = PortPicker(Settings(), lambda: next(draws))
    assert [picker.pick(), picker.pick()] == [41000, 41001]


def test_a_picker_that_only_draws_reserved_ports_says_so() -> None:
    picker = PortPicker(Settings(), lambda: 50051)
    with pytest.raises(RuntimeError, match="no free loopback port"):
        picker.pick()


def test_real_picks_are_distinct_bindable_and_outside_the_settings() -> None:
    settings = Settings()
    picker = PortPicker(settings, free_port)
    picked = [picker.pick() for _ in range(20)]
    assert len(set(picked)) == 20
    assert not set(picked) & named_ports(settings)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", picked[0]))
