"""Waiting for an event or a time, whichever comes first, without losing a cancellation.

The obvious way, ``asyncio.wait_for(event.wait(), seconds)``, loses a cancellation on Python
3.11 when it arrives just as the event is set: ``wait_for`` finds its inner wait done and
returns instead of raising ``CancelledError``, and the task goes on as if it had never been
cancelled (3.12 rebuilt ``wait_for`` on ``asyncio.timeout`` and fixed it). A daemon loop that
waited that way could outlive the cancel meant to end it: an ingest writer cancelled right after
a request woke it kept running, and ``ledger up --one-process`` never saw it end.
``asyncio.timeout`` turns into ``TimeoutError`` only the cancel it made itself, so a cancel from
outside always reaches the task.
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` have passed; ``True`` if it is set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
