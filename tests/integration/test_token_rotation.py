"""Changing LEDGER_INTERNAL_TOKEN without downtime, on a real auth daemon and a real gateway.

The rollout: every daemon first accepts the new token (LEDGER_INTERNAL_TOKENS_ACCEPTED) while
still sending the old one; then sends the new one and accepts the old; then drops the old.
At every step a daemon of the step before and one of the step after understand each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from ledger.config import Settings
from ledger.daemons import auth as auth_daemon
from ledger.daemons.gateway.daemon import GatewayDaemon
from ledger.errors import LedgerError
from ledger.rpc.channel import HealthClient
from tests.ports import free_port

OLD, NEW = "old-internal-token", "new-internal-token"


@asynccontextmanager
async def auth_with(settings: Settings, token: str, accepted: str | None) -> AsyncIterator[str]:
    daemon = auth_daemon.create(settings.with_overrides(internal_token=token,
                                                        internal_tokens_accepted=accepted))
    await daemon.start()
    try:
        yield f"127.0.0.1:{daemon.port}"
    finally:
        await daemon.stop()


async def answers(addr: str, token: str) -> bool:
    """Whether the daemon at ``addr`` takes a call that carries ``token``."""
    client = HealthClient("auth", addr, token, timeout=5)
    try:
        await client.check_health(timeout=5)
        return True
    except LedgerError as exc:
        assert "internal token" in exc.message, exc.message  # refused, not just away
        return False
    finally:
        await client.close()


async def test_each_step_of_the_rollout_understands_the_steps_beside_it(
        settings: Settings) -> None:
    # 0: old only; 1: sends old, accepts new; 2: sends new, accepts old; 3: new only.
    steps = [(OLD, None), (OLD, NEW), (NEW, OLD), (NEW, None)]
    for index, (token, accepted) in enumerate(steps):
        async with auth_with(settings, token, accepted) as addr:
            taken = {t for t in (OLD, NEW, "someone-else") if await answers(addr, t)}
            assert taken == {token, accepted} - {None}, index
            # A daemon still at the step before, or already at the step after, gets through.
            for neighbour in (index - 1, index + 1):
                if 0 <= neighbour < len(steps):
                    assert steps[neighbour][0] in taken, (index, neighbour)


async def test_the_gateway_takes_either_token_as_the_operator_header(
        settings: Settings) -> None:
    gateway = GatewayDaemon(settings.with_overrides(
        internal_token=NEW, internal_tokens_accepted=OLD,
        auth_addr=f"127.0.0.1:{free_port()}", query_addr=f"127.0.0.1:{free_port()}",
        ingest_addr=f"127.0.0.1:{free_port()}", gateway_listen="127.0.0.1:0"))
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as http:
            seen = {}
            for token in (NEW, OLD, "someone-else"):
                body = (await http.get("/health/deep",
                                       headers={"X-Ledger-Internal-Token": token})).json()
                seen[token] = "checks" in body and any(
                    "unavailable at" in str(v) for v in body["checks"].values())
    finally:
        await gateway.stop()
    assert seen == {NEW: True, OLD: True, "someone-else": False}
