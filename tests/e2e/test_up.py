"""`ledger up` as a new user runs it: embedded databases, ready banner, a working key, Ctrl-C,
a second start on the same data (in the other mode), a daemon that dies and comes back."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.ports import free_port
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.e2e

KEY = re.compile(r"API key\s+(ledger_\S+)")


#: The daemons with an internal gRPC port of a default value (50051-50054).
GRPC_DAEMONS = ("AUTH", "INGEST", "QUERY", "ALERTS")


def internal_ports(given: dict[str, str]) -> dict[str, str]:
    """A port the OS has free now for each daemon that ``given`` does not place: two `ledger
    up`s started at once (xdist workers) would otherwise both try the default ports, and a
    port taken between one's check and its bind fails that daemon's start."""
    env: dict[str, str] = {}
    for name in GRPC_DAEMONS:
        if f"LEDGER_{name}_LISTEN" not in given:
            env[f"LEDGER_{name}_LISTEN"] = env[f"LEDGER_{name}_ADDR"] = (
                f"127.0.0.1:{free_port()}")
    return env


class UpProcess:
    def __init__(self, workdir: Path, port: int, *args: str,
                 env: dict[str, str] | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env = internal_ports(env or {}) | (env or {})
        self.output = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ledger", "up", "--data-dir", str(workdir / ".ledger"),
             "--listen", f"127.0.0.1:{port}", *args],
            cwd=workdir, env=base | env | {"COLUMNS": "200"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

    def read_until(self, pattern: str, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while pattern not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"no {pattern!r} in `ledger up` output:\n{self.output}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 65536).decode(errors="replace")
                self.output += chunk
        return self.output

    def interrupt(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        rest, _ = self.proc.communicate(timeout=timeout)
        self.output += rest.decode(errors="replace")
        return self.proc.returncode


def _state(workdir: Path) -> dict[str, str]:
    data = json.loads((workdir / ".ledger" / "state.json").read_text())
    assert isinstance(data, dict)
    return data


def _ingest(url: str, key: str, message: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/ingest/single", headers={"X-API-Key": key}, timeout=10,
        json={"timestamp": datetime.now(UTC).isoformat(), "level": "error", "message": message},
    )


def _count(logs_url: str, message: str, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        with psycopg.connect(logs_url) as conn:
            cur = conn.execute("SELECT count(*) FROM logs WHERE message = %s", (message,))
            row = cur.fetchone()
        count = int(row[0]) if row else 0
        if count:
            return count
        time.sleep(0.2)
    return count


def test_up_from_nothing_to_ready_and_back(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    redis_port = free_port()
    # Daemons as child processes (restarted when they die); the second start below is the
    # default one-process mode on the same data.
    first = UpProcess(tmp_path, port, "--processes",
                      env={"LEDGER_REDIS_EMBEDDED_PORT": str(redis_port)})
    try:
        banner = first.read_until("Press Ctrl-C to stop", timeout=120)
        assert "Ledger is ready" in banner
        assert url in banner
        assert " INFO " not in banner  # no log lines cut into the banner
        assert _state(tmp_path)["redis_port"] == redis_port
        assert "password" in banner and "shown once" in banner
        match = KEY.search(banner)
        assert match, banner
        key = match.group(1)
        assert _state(tmp_path)["api_key"] == key
        assert f"Sentry    http://{key}@127.0.0.1:{port}/1  (DSN" in banner

        assert _ingest(url, key, "first run").status_code == 202
        assert _count(_state(tmp_path)["logs_database_url"], "first run") == 1
        # The embedded server runs sized for one machine (ledger.embedded.EMBEDDED_SETTINGS).
        with psycopg.connect(_state(tmp_path)["logs_database_url"]) as conn:
            sized = {name: conn.execute(f"SHOW {name}").fetchone()
                     for name in ("shared_buffers", "io_method")}
        assert sized == {"shared_buffers": ("32MB",), "io_method": ("sync",)}

        # Other commands from the same folder find the running stack with no flags.
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        listed = subprocess.run([sys.executable, "-m", "ledger", "keys", "list", "--project",
                                 "default", "--json"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert key.split("_")[1] in listed.stdout

        # `ledger status` finds every daemon through the saved state (ports that moved too).
        status = subprocess.run([sys.executable, "-m", "ledger", "status", "--json"],
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads(status.stdout)
        assert all(d["healthy"] for d in report["daemons"].values()), report
        # Every daemon's metrics port, shown in the banner, answers.
        metrics = re.search(r"metrics +(\S+)/metrics; (.+) \(GET /metrics\)", banner)
        assert metrics, banner
        ports = dict(part.split(" :") for part in metrics.group(2).split(", "))
        # --processes on 2 cores: ingest as two API processes and a writer, a port each.
        assert set(ports) >= {"auth", "ingest", "query", "analytics", "alerts"}
        copies = {name for name in ports if name.startswith(("ingest-", "writer-"))}
        assert copies == {p.rsplit(".", 1)[0] for p in os.listdir(tmp_path / ".ledger" / "logs")
                          if p.startswith(("ingest-", "writer-"))}, ports
        accepted = 0
        for name in ("ingest", *sorted(c for c in copies if c.startswith("ingest-"))):
            scraped = httpx.get(f"http://127.0.0.1:{ports[name]}/metrics", timeout=10).text
            found = re.search(r'^ledger_ingest_logs_total\{outcome="accepted",reason=""\} (\d+)',
                              scraped, re.M)
            accepted += int(found.group(1)) if found else 0
        assert accepted == 1  # the one log sent so far, by whichever API process took it

        # A daemon that dies is restarted and the restart is reported.
        pids = subprocess.run(["pgrep", "-P", str(first.proc.pid), "-f", "ledger serve ingest"],
                              capture_output=True, text=True).stdout.split()
        daemons: dict[str, int] = json.loads((tmp_path / ".ledger" / "state.json").read_text()
                                             )["daemons"]
        # Ingest runs as its API and writer processes (daemons/layout.py), each recorded.
        assert sorted(pids) == sorted(str(pid) for name, pid in daemons.items()
                                      if name.startswith(("ingest", "writer"))), daemons
        os.kill(int(daemons["ingest"]), signal.SIGKILL)
        first.read_until("ingest restarted", timeout=30)
        wait_until_blocking(lambda: _ingest(url, key, "after restart").status_code == 202,
                            "the restarted ingest accepts logs", interval=0.3)
        assert _count(_state(tmp_path)["logs_database_url"], "after restart") >= 1
    finally:
        code = first.interrupt()
    assert code == 0, first.output
    assert "stopped" in first.output

    # A second `ledger up` on the same data dir reuses it: same key, data kept, no new key.
    # An internal port that is taken moves, and the banner says where.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        second = UpProcess(tmp_path, port, env={"LEDGER_QUERY_LISTEN": taken,
                                                "LEDGER_QUERY_ADDR": taken})
        banner = second.read_until("Press Ctrl-C to stop", timeout=120)
    try:
        assert key not in banner  # the full key was shown once, on the first start
        assert f"{key.rsplit('_', 1)[0]}_…" in banner
        assert str(tmp_path / ".ledger" / "state.json") in banner
        assert "shown once" not in banner and "password" not in banner
        assert re.search(rf"moved\s+query on 127\.0\.0\.1:\d+ \({taken} was in use", banner), \
            banner
        assert _count(_state(tmp_path)["logs_database_url"], "first run") == 1
        assert _ingest(url, key, "second run").status_code == 202
    finally:
        assert second.interrupt() == 0, second.output
    # One process, embedded PostgreSQL: stopping forks pg_ctl, and grpc's C-core printed an
    # INFO line about its fork handlers; no such line may reach the terminal.
    assert not re.search(r"^[IW]\d{4} \d\d:\d\d", second.output, re.M), second.output


def test_up_refuses_a_gateway_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        up = UpProcess(tmp_path, port)
        raw, _ = up.proc.communicate(timeout=120)
        out = raw.decode()
    assert up.proc.returncode != 0
    assert f"port 127.0.0.1:{port} is in use" in out
    assert "Traceback" not in out
