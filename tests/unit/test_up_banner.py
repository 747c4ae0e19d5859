"""What `ledger up` tells on start: the key once, moved ports, a pinned Redis port."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from ledger.cli import up
from ledger.config import Settings
from ledger.errors import ConfigError

KEY = "ledger_abcdefghijkl_" + "s" * 52


def _banner(capsys: pytest.CaptureFixture[str], tmp_path: Path, new_key: bool,
            moved: list[str] | None = None) -> str:
    project = SimpleNamespace(slug="default", dsn_id=1)
    account = SimpleNamespace(email="admin@ledger.local")
    up._banner(Settings(data_dir=tmp_path), "http://127.0.0.1:8000", ["auth", "gateway"],
               project, KEY, new_key, account, "pw-once" if new_key else None, 1.0, moved)
    return capsys.readouterr().out


def test_first_start_shows_the_key_and_password_once(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    out = _banner(capsys, tmp_path, new_key=True)
    assert KEY in out and "pw-once" in out
    assert out.count("shown once") == 2


def test_later_starts_say_where_the_key_is_not_what_it_is(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    out = _banner(capsys, tmp_path, new_key=False)
    assert KEY not in out
    assert "ledger_abcdefghijkl_…" in out
    assert str(tmp_path / "state.json") in out
    assert "keys create --project default" in out
    assert "password" not in out and "shown once" not in out


def test_moved_ports_are_in_the_banner(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    before = Settings(query_listen="127.0.0.1:50053")
    after = Settings(query_listen="127.0.0.1:41234", query_addr="127.0.0.1:41234")
    moved = up._moved_ports(before, after)
    assert moved == ["query on 127.0.0.1:41234 (127.0.0.1:50053 was in use;"
                     " pin it with LEDGER_QUERY_LISTEN)"]
    assert "moved     query on 127.0.0.1:41234" in _banner(capsys, tmp_path, False, moved)


def test_a_pinned_redis_port_that_is_taken_stops_instead_of_moving() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} \\(LEDGER_REDIS_EMBEDDED_PORT\\)"):
            up._redis_port(Settings(redis_embedded_port=port), saved=0)
        assert up._redis_port(Settings(), saved=port) == 0  # the saved one moves
    assert up._redis_port(Settings(redis_embedded_port=port), saved=0) == port
    assert up._redis_port(Settings(), saved=port) == port


def test_the_pinned_port_variable_parses() -> None:
    assert Settings.from_env({"LEDGER_REDIS_EMBEDDED_PORT": "6390"}).redis_embedded_port == 6390
    with pytest.raises(ConfigError, match="LEDGER_REDIS_EMBEDDED_PORT"):
        Settings.from_env({"LEDGER_REDIS_EMBEDDED_PORT": "abc"})
