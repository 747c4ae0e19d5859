"""Which processes `ledger up` starts: one per daemon, the ingest daemon as several.

The ingest daemon runs as several processes: API processes (accept, validate, queue: role
``api``, or ``all`` with their own writers) and writer processes (store the queue: role
``writer``), so that ingest uses every core. How many of each is worthwhile was measured
(bench/RESULTS.md, "Ingest across processes"): ``auto_ingest_layout`` holds that rule, and
``LEDGER_UP_INGEST_PROCESSES`` / ``LEDGER_UP_WRITER_PROCESSES`` override it.

Each process gets settings of its own (its role and its gRPC port); the gateway is told every
API process's address, and its channel spreads calls over them round-robin.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ledger.config import Settings


@dataclass(frozen=True)
class Process:
    """One child of `ledger up`: ``ledger serve <daemon>`` with its own settings."""

    #: Unique among the children: the daemon's name, or ``ingest-2``, ``writer-1``...
    name: str
    daemon: str
    settings: Settings


def auto_ingest_layout(cpus: int) -> tuple[int, int]:
    """(ingest API processes, writer processes) for a machine with ``cpus`` cores.

    Measured on 2 cores (bench/bench_layout.py; bench/RESULTS.md "Ingest across processes"):
    the accept side costs about 25 µs of CPU per log, the writers about 2.5, the rest of the
    stack (gateway, PostgreSQL, Redis) about 11. One ingest process is held to one core by
    the GIL, so two API processes store about 1.3 x what one does (projected 52 k logs/s
    against 40 k). One writer process apart from them stored as much as writers inside them
    (52 k against 50 k, within the noise) and keeps storing on its own scheduler when the
    accept side saturates its processes, as DESIGN §2.4 draws it. So: API processes for the
    accept side's two thirds of the CPU, and one writer process per 8 cores (2.5 µs per log:
    one keeps up with several API processes); beyond 2 cores this is extrapolated, not
    measured, and the LEDGER_UP_* settings override it.
    """
    if cpus <= 1:
        return 1, 0  # one core: a second process only adds switching
    return math.ceil(cpus * 2 / 3), max(1, cpus // 8)


def ingest_counts(settings: Settings, cpus: int | None = None) -> tuple[int, int]:
    """The ingest layout asked for by the settings, ``auto`` ones filled in."""
    auto_api, auto_writers = auto_ingest_layout(cpus or os.cpu_count() or 1)
    api = settings.up_ingest_processes or auto_api
    writers = auto_writers if settings.up_writer_processes is None \
        else settings.up_writer_processes
    return api, writers


def _local(listen: str) -> str:
    host, port = listen.rsplit(":", 1)
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "") else listen


def plan(settings: Settings, names: Iterable[str], free_port: Callable[[], int],
         cpus: int | None = None) -> list[Process]:
    """The processes for daemons ``names``.

    The first ingest API process keeps ``LEDGER_INGEST_LISTEN``; the others, and the writer
    processes (a health-only port, which is also their identity in the consumer group), get
    free ports on the loopback. Every other daemon (the gateway above all) is told the
    addresses of all the API processes.
    """
    names = list(names)
    if "ingest" not in names:
        return [Process(name, name, settings) for name in names]
    api_count, writer_count = ingest_counts(settings, cpus)
    role = "api" if writer_count else "all"
    listens = [settings.ingest_listen] + [f"127.0.0.1:{free_port()}"
                                          for _ in range(api_count - 1)]
    shared = settings.with_overrides(ingest_addr=",".join(_local(x) for x in listens))
    def metrics_port(first: bool) -> dict[str, str]:
        # One metrics port per process: the first ingest keeps LEDGER_INGEST_METRICS_LISTEN,
        # each other copy binds a free loopback port of its own (two cannot share one).
        if first or not settings.ingest_metrics_listen:
            return {}
        return {"ingest_metrics_listen": f"127.0.0.1:{free_port()}"}

    processes: list[Process] = []
    for name in names:
        if name != "ingest":
            processes.append(Process(name, name, shared))
            continue
        for index, listen in enumerate(listens):
            processes.append(Process(
                "ingest" if index == 0 else f"ingest-{index + 1}", "ingest",
                settings.with_overrides(ingest_role=role, ingest_listen=listen,
                                        ingest_addr=_local(listen),
                                        **metrics_port(index == 0))))
        for index in range(writer_count):
            listen = f"127.0.0.1:{free_port()}"
            processes.append(Process(
                f"writer-{index + 1}", "ingest",
                settings.with_overrides(ingest_role="writer", ingest_listen=listen,
                                        ingest_addr=listen, **metrics_port(False))))
    return processes
