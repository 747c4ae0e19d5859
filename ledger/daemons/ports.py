"""Loopback ports for a local stack's daemons, picked so that no two of them collide.

`ledger up --processes` must name each child's ports before the child binds them. A port the
kernel calls free now is free only of sockets bound *now*: the configured gRPC ports
(50051-50054) are not bound until their daemons start, so a bare "bind port 0" pick can hand
out 50051 as a metrics port and the auth daemon then takes it first. The picker remembers every
port the settings name and every port it has handed out, and never returns one twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ledger.config import Settings


def named_ports(settings: Settings) -> set[int]:
    """Every TCP port ``settings`` names in a ``*_listen`` or ``*_addr`` value."""
    ports: set[int] = set()
    for field in dataclasses.fields(settings):
        if not field.name.endswith(("_listen", "_addr")):
            continue
        value = getattr(settings, field.name)
        if not isinstance(value, str):
            continue
        # An address may be a list (LEDGER_INGEST_ADDR=host:a,host:b).
        for address in value.split(","):
            port = address.rsplit(":", 1)[-1].strip()
            if port.isdigit():
                ports.add(int(port))
    return ports


class PortPicker:
    """Hands out free loopback ports that no setting names and that it has not handed out."""

    #: A free port that is also reserved is rare (the kernel picks among ~28 000); this many
    #: draws in a row means something is wrong with the machine, not bad luck.
    MAX_DRAWS = 100

    def __init__(self, settings: Settings, free_port: Callable[[], int]) -> None:
        self._free_port = free_port
        self.reserved = named_ports(settings)

    def pick(self) -> int:
        for _ in range(self.MAX_DRAWS):
            port = self._free_port()
            if port not in self.reserved:
                self.reserved.add(port)
                return port
        raise RuntimeError(f"no free loopback port outside {sorted(self.reserved)} after"
                           f" {self.MAX_DRAWS} tries")
