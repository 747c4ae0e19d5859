"""Run as a program: start `ledger up`'s kind of children while gRPC calls are in flight.

``ledger up`` (``ledger.daemons.supervisor``) starts a daemon with ``die_with_parent()`` as its
``preexec_fn`` while its health checks of the daemons already up are on the wire. This program
does the same in miniature, in a process of its own (the gRPC core reads its settings once):
it applies what ``ledger``'s entry point applies (``prepare_grpc_core``) unless told not to,
keeps four threads calling a real gRPC server, spawns ``--children`` processes through the
lifeline, and prints one JSON line: how many children died and how many calls failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from concurrent import futures

from ledger.config import prepare_grpc_core
from ledger.lifeline import die_with_parent

CALLERS = 4


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=200)
    parser.add_argument("--without-ledger-settings", action="store_true")
    args = parser.parse_args()
    if not args.without_ledger_settings:
        prepare_grpc_core()
    import grpc  # after the settings: the core reads them when it starts
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(CALLERS))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    done = threading.Event()
    calls = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def call_forever() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not done.is_set():
                try:
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    outcome = "ok"
                except grpc.RpcError:
                    outcome = "failed"
                with lock:
                    calls[outcome] += 1

    callers = [threading.Thread(target=call_forever) for _ in range(CALLERS)]
    for caller in callers:
        caller.start()
    died = []
    for _ in range(args.children):
        child = subprocess.run(["true"], preexec_fn=die_with_parent(), stderr=subprocess.PIPE,
                               check=False)
        if child.returncode != 0:
            died.append(f"exit {child.returncode}: {child.stderr.decode(errors='replace')[-200:]}")
    done.set()
    for caller in callers:
        caller.join()
    server.stop(None)
    print(json.dumps({"children": args.children, "died": len(died), "first": died[:1],
                      "calls_ok": calls["ok"], "calls_failed": calls["failed"]}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
