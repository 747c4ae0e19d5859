"""Waiting on a condition instead of sleeping a guessed time.

``wait_until`` polls until the condition holds and returns what it returned; the timeout is a
bound for a broken build (generous, never a speed assertion): a passing test takes only as long
as the condition needs. ``wait_until_blocking`` is the same for code without an event loop
(tests driving subprocess stacks, receivers running in threads).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: How long a condition may take before the test fails: far beyond any healthy run.
PATIENCE_SECONDS = 30.0


async def wait_until(condition: Callable[[], T | Awaitable[T]], what: str, *,
                     timeout: float = PATIENCE_SECONDS, interval: float = 0.02) -> T:
    """The first truthy value of ``condition()`` (sync or async), polled every ``interval``.

    Raises:
        AssertionError: ``what`` did not happen within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s in vain: {what}")
        await asyncio.sleep(interval)


def wait_until_blocking(condition: Callable[[], T], what: str, *,
                        timeout: float = PATIENCE_SECONDS, interval: float = 0.05) -> T:
    """``wait_until`` for a caller without an event loop: blocks the thread between polls.

    Raises:
        AssertionError: ``what`` did not happen within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s in vain: {what}")
        time.sleep(interval)
