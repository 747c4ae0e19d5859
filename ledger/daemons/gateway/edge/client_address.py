"""The caller's address, as throttles key on it (DESIGN §4).

The address is the socket's peer. ``X-Forwarded-For`` is believed only when that peer is one
of ``LEDGER_GATEWAY_TRUSTED_PROXIES`` (none by default): otherwise any caller could pick the
address its failures are counted against. Behind trusted proxies the header is read from the
right, skipping the proxies' own addresses, so the first untrusted hop is the client (what a
client writes further left is its own claim and is ignored).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


@functools.lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def _is_trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(peer: str, forwarded_for: str | None, trusted: tuple[str, ...]) -> str:
    """The client's address given the socket ``peer`` and its ``X-Forwarded-For`` header."""
    networks = _networks(trusted)
    if not forwarded_for or not networks or not _is_trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a garbled header: the proxy is the only address we know
        if not _is_trusted(hop, networks):
            return hop
    return hops[0] if hops else peer  # every hop is a trusted proxy: the first is the origin


def client_address(request: Request) -> str:
    """Who is calling ``request``, for throttles and logs."""
    peer = request.client.host if request.client is not None else UNKNOWN
    trusted: tuple[str, ...] = request.app.state.gateway.settings.gateway_trusted_proxies
    return forwarded_client(peer, request.headers.get("x-forwarded-for"), trusted)
