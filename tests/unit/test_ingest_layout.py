"""The ingest process layout of `ledger up`, its settings, and the gateway's channel target."""

from __future__ import annotations

import itertools

import pytest
from typer.testing import CliRunner

from ledger.cli.main import app
from ledger.config import Settings
from ledger.daemons.ingest import IngestDaemon
from ledger.daemons.layout import auto_ingest_layout, ingest_counts, plan
from ledger.errors import ConfigError
from ledger.rpc.channel import channel_target

NAMES = ["auth", "ingest", "query", "gateway"]


def _ports() -> itertools.count[int]:
    return itertools.count(41000)


def test_addr_lists_take_ip_addresses_only() -> None:
    settings = Settings.from_env({"LEDGER_INGEST_ADDR": "127.0.0.1:5001, 127.0.0.1:5002"})
    assert settings.ingest_addr == "127.0.0.1:5001,127.0.0.1:5002"
    assert Settings.from_env({"LEDGER_INGEST_ADDR": "ingest:50052"}).ingest_addr \
        == "ingest:50052"
    with pytest.raises(ConfigError, match="IP:PORT only"):
        Settings.from_env({"LEDGER_INGEST_ADDR": "127.0.0.1:5001,ingest:5002"})
    with pytest.raises(ConfigError, match="HOST:PORT"):
        Settings.from_env({"LEDGER_INGEST_ADDR": "127.0.0.1:5001,nope"})


def test_role_and_layout_settings() -> None:
    settings = Settings.from_env({"LEDGER_INGEST_ROLE": "WRITER",
                                  "LEDGER_UP_INGEST_PROCESSES": "3",
                                  "LEDGER_UP_WRITER_PROCESSES": "0"})
    assert (settings.ingest_role, settings.up_ingest_processes,
            settings.up_writer_processes) == ("writer", 3, 0)
    assert Settings.from_env({"LEDGER_UP_WRITER_PROCESSES": "auto"}).up_writer_processes is None
    with pytest.raises(ConfigError, match="LEDGER_INGEST_ROLE"):
        Settings.from_env({"LEDGER_INGEST_ROLE": "reader"})
    with pytest.raises(ConfigError, match="at least 1"):
        Settings.from_env({"LEDGER_UP_INGEST_PROCESSES": "0"})


def test_channel_target_is_a_static_list_for_several_addresses() -> None:
    assert channel_target("127.0.0.1:5001") == "127.0.0.1:5001"
    assert channel_target("ingest:50052") == "ingest:50052"
    assert channel_target("127.0.0.1:5001,127.0.0.1:5002") == "ipv4:127.0.0.1:5001,127.0.0.1:5002"
    assert channel_target("[::1]:5001,[::1]:5002") == "ipv6:[::1]:5001,[::1]:5002"


def test_one_core_keeps_one_ingest_process_and_more_cores_spread_it() -> None:
    assert auto_ingest_layout(1) == (1, 0)
    assert auto_ingest_layout(2) == (2, 1)  # measured best here (bench/RESULTS.md)
    for cpus in (4, 8, 16):
        api, writers = auto_ingest_layout(cpus)
        assert 1 < api < cpus and 1 <= writers < api


def test_settings_override_the_measured_layout() -> None:
    settings = Settings(up_ingest_processes=3, up_writer_processes=0)
    assert ingest_counts(settings, cpus=2) == (3, 0)
    assert ingest_counts(Settings(up_writer_processes=4), cpus=2)[1] == 4


def test_plan_gives_every_ingest_process_its_port_and_role() -> None:
    ports = _ports()
    settings = Settings(ingest_listen="127.0.0.1:50052", up_ingest_processes=2,
                        up_writer_processes=2)
    processes = plan(settings, NAMES, lambda: next(ports))
    by_name = {p.name: p for p in processes}
    assert [p.name for p in processes] == ["auth", "ingest", "ingest-2", "writer-1", "writer-2",
                                           "query", "gateway"]
    assert {p.settings.ingest_role for p in processes if p.daemon == "ingest"
            and p.name.startswith("ingest")} == {"api"}
    assert {by_name[n].settings.ingest_role for n in ("writer-1", "writer-2")} == {"writer"}
    listens = [p.settings.ingest_listen for p in processes if p.daemon == "ingest"]
    assert len(set(listens)) == 4  # a port each: the writers' consumer names differ
    assert by_name["ingest"].settings.ingest_listen == "127.0.0.1:50052"
    # The gateway reaches both API processes, never a writer.
    assert by_name["gateway"].settings.ingest_addr == \
        f"127.0.0.1:50052,{by_name['ingest-2'].settings.ingest_listen}"
    # Each ingest process is probed on its own address.
    assert by_name["writer-2"].settings.ingest_addr == by_name["writer-2"].settings.ingest_listen


def test_plan_without_writer_processes_runs_ingest_as_before() -> None:
    processes = plan(Settings(up_ingest_processes=1, up_writer_processes=0), NAMES,
                     lambda: 1)
    assert [p.name for p in processes] == NAMES
    ingest = next(p for p in processes if p.daemon == "ingest")
    assert ingest.settings.ingest_role == "all"


def test_role_is_only_for_ingest() -> None:
    result = CliRunner().invoke(app, ["serve", "query", "--role", "writer"])
    assert result.exit_code == 78
    assert "--role is for `ledger serve ingest`" in result.output


async def test_a_writer_process_needs_writers() -> None:
    daemon = IngestDaemon(Settings(ingest_role="writer", ingest_writers=0, internal_token="t"))
    with pytest.raises(ConfigError, match="LEDGER_INGEST_WRITERS"):
        await daemon.start()  # refused before anything is opened


def test_every_ingest_process_gets_a_metrics_port_of_its_own() -> None:
    ports = _ports()
    settings = Settings(ingest_listen="127.0.0.1:50052", ingest_metrics_listen="127.0.0.1:9102",
                        up_ingest_processes=2, up_writer_processes=1)
    metrics = [p.settings.ingest_metrics_listen for p in plan(settings, NAMES, lambda: next(ports))
               if p.daemon == "ingest"]
    assert metrics[0] == "127.0.0.1:9102" and len(set(metrics)) == 3, metrics
    # Off stays off for every copy.
    quiet = Settings(ingest_listen="127.0.0.1:50052", up_ingest_processes=2, up_writer_processes=1)
    assert {p.settings.ingest_metrics_listen for p in plan(quiet, NAMES, lambda: next(ports))
            if p.daemon == "ingest"} == {None}
