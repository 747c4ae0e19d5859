"""Circuit breaker around the auth daemon (DESIGN §4).

    CLOSED ──(N consecutive failures)──► OPEN ──(cooldown)──► HALF_OPEN ──(probe ok)──► CLOSED
                                          ▲                        │
                                          └────(probe fails)───────┘

While OPEN no call goes to auth: the gateway serves keys from the emergency cache. After the
cooldown exactly one caller is let through as the probe; its outcome closes or reopens the
circuit. A probe whose caller vanished (cancelled request) is forgotten after
``probe_timeout_seconds`` so that the breaker cannot stay half-open for ever.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class BreakerState(enum.Enum):
    """Where the breaker is; the value is what /metrics and /health/deep show."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures of one dependency and stops calling it while it is down.

    Not thread-safe, and needs not be: it lives on one event loop.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cooldown_seconds: float = 5.0,
        probe_timeout_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self.probe_timeout_seconds = probe_timeout_seconds
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started_at: float | None = None

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow_request(self) -> bool:
        """Whether the caller may call the dependency now (HALF_OPEN: whether it is the probe)."""
        if self._state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if self._state is BreakerState.OPEN:
            if now - self._opened_at < self.cooldown_seconds:
                return False
            self._state = BreakerState.HALF_OPEN
            self._probe_started_at = now
            logger.info("%s circuit half-open: probing", self.name)
            return True
        # HALF_OPEN: one probe at a time, unless the last one was abandoned.
        if self._probe_started_at is not None and (
            now - self._probe_started_at < self.probe_timeout_seconds
        ):
            return False
        self._probe_started_at = now
        return True

    def record_success(self) -> None:
        """The dependency answered (a refusal such as "unknown key" is an answer too)."""
        if self._state is not BreakerState.CLOSED:
            logger.info("%s circuit closed: the dependency answers again", self.name)
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_started_at = None

    def record_failure(self) -> None:
        """The dependency could not be reached or timed out."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            if self._state is BreakerState.CLOSED:
                logger.warning("%s circuit open after %d consecutive failures", self.name,
                               self._failures)
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._probe_started_at = None
