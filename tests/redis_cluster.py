"""A real Redis Cluster on loopback ports for tests: 3 masters, one replica each.

Started with the Debian ``redis-server`` in cluster mode and ``redis-cli --cluster create``,
in a temporary directory, on free ports; stopped (and its files removed) by ``stop``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MASTERS = 3


def _free_ports(n: int) -> list[int]:
    # Cluster nodes also listen on port + 10000 (the bus): both must be free.
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


@dataclass
class RedisCluster:
    """The servers of one test cluster; ``url`` is what ``LEDGER_REDIS_URL`` takes."""

    root: Path
    ports: list[int]
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:MASTERS])

    def cli(self, port: int, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(port), *args], check=True,
                              capture_output=True, text=True, timeout=10).stdout

    def role(self, port: int) -> str:
        return self.cli(port, "role").split("\n", 1)[0]

    def masters(self) -> list[int]:
        return [p for p, proc in self.processes.items()
                if proc.poll() is None and self.role(p) == "master"]

    def replica_of(self, master: int) -> int:
        for port, proc in self.processes.items():
            if proc.poll() is None and port != master:
                info = self.cli(port, "info", "replication")
                if f"master_port:{master}" in info:
                    return port
        raise AssertionError(f"no replica of {master}")

    def start_node(self, port: int) -> None:
        node = self.root / str(port)
        node.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", "1000", "--appendonly", "no", "--save", "",
             "--dir", str(node), "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        # SIGKILL: the servers and their files are thrown away, and a SIGTERMed master waits
        # (up to 10 s) for replicas that are stopping too.
        for proc in self.processes.values():
            proc.kill()
        for proc in self.processes.values():
            proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _responds(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start(root: Path, *, timeout: float = 20.0) -> RedisCluster:
    """Start 3 masters and 3 replicas and wait until the cluster says ``cluster_state:ok``."""
    root.mkdir(parents=True, exist_ok=True)
    cluster = RedisCluster(root, _free_ports(2 * MASTERS))
    for port in cluster.ports:
        cluster.start_node(port)
    deadline = time.monotonic() + timeout
    try:
        while not all(_responds(p) for p in cluster.ports):
            if time.monotonic() > deadline:
                raise AssertionError("the cluster's redis-servers did not start")
            time.sleep(0.02)
        subprocess.run(["redis-cli", "--cluster", "create",
                        *[f"127.0.0.1:{p}" for p in cluster.ports],
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, capture_output=True, timeout=timeout)
        while not all("cluster_state:ok" in cluster.cli(p, "cluster", "info")
                      for p in cluster.ports):
            if time.monotonic() > deadline:
                raise AssertionError("the test cluster did not reach cluster_state:ok")
            time.sleep(0.05)
    except BaseException:
        cluster.stop()
        raise
    return cluster
