"""Numbers the queue's producer and its readers must agree on (one definition each)."""

from __future__ import annotations

#: Newest error notifications kept per project (the SSE replay window, DESIGN §7).
NOTIFICATIONS_MAXLEN = 1000
#: Newest logs kept per project for ``GET /logs/tail``.
TAIL_MAXLEN = 2000
#: A day's quota counter outlives its day a little, so that "today" is never lost at midnight.
QUOTA_TTL_SECONDS = 2 * 86_400
#: What a client is told to wait (``Retry-After``) when a project's queue is full.
QUEUE_FULL_RETRY_SECONDS = 60
