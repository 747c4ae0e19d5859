"""``wait_set``: an event or a time, and a cancel that lands as the event is set still ends
the task (``asyncio.wait_for`` on Python 3.11 returns instead, and the task lives on)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

import pytest

from ledger.daemons.waits import wait_set


async def test_returns_true_when_the_event_is_set_and_false_after_the_time() -> None:
    event = asyncio.Event()
    started = time.monotonic()
    assert await wait_set(event, 0.05) is False
    assert time.monotonic() - started >= 0.04
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_set(event, 5) is True


async def _loop_of_waits(event: asyncio.Event, rounds: list[int]) -> None:
    # The shape of a daemon's loop: wait for a wake-up or a period, then go round again.
    while True:
        await wait_set(event, 5)
        event.clear()
        rounds.append(1)


async def test_a_cancel_arriving_as_the_event_is_set_ends_the_task() -> None:
    event = asyncio.Event()
    rounds: list[int] = []
    task = asyncio.create_task(_loop_of_waits(event, rounds))
    await asyncio.sleep(0.01)
    event.set()  # the wait is over: the task is due to run and has not run yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert task.cancelled()
    assert rounds == []  # cancelled at the wait it was woken from, not one round later


async def test_the_race_is_real_with_wait_for_on_this_python() -> None:
    # Keeps the reason for wait_set honest: if asyncio.wait_for ever stops losing the cancel
    # here (Python 3.12+), this says so and wait_set can go.
    event = asyncio.Event()

    async def old_loop() -> str:
        for _ in range(2):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 5)
            event.clear()
        return "ran on after the cancel"  # never: the second cancel ends it

    task = asyncio.create_task(old_loop())
    await asyncio.sleep(0.01)
    event.set()
    await asyncio.sleep(0)  # wait_for's inner wait ends; wait_for itself has not seen it yet
    task.cancel()
    await asyncio.sleep(0.05)
    if sys.version_info >= (3, 12):
        assert task.cancelled()
    else:
        assert not task.done()  # the cancel was lost: the loop waits in its next round
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
