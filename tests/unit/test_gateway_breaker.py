"""The auth circuit breaker's state machine (DESIGN §4), on a controlled clock."""

from __future__ import annotations

from ledger.daemons.gateway.edge.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("auth", failure_threshold=3, cooldown_seconds=5.0,
                          probe_timeout_seconds=10.0, clock=clock)


def test_opens_after_consecutive_failures_only() -> None:
    breaker = make(Clock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the streak
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow_request()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow_request()


def test_one_probe_after_cooldown_then_closes_on_success() -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 4.9
    assert not breaker.allow_request()
    clock.now += 0.2
    assert breaker.allow_request()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow_request()  # nobody else while it runs
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow_request()


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 5.0
    assert breaker.allow_request()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.0
    assert not breaker.allow_request()
    clock.now += 1.0
    assert breaker.allow_request()


def test_abandoned_probe_is_replaced_after_its_timeout() -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 5.0
    assert breaker.allow_request()  # probe whose caller never reports back
    clock.now += 9.0
    assert not breaker.allow_request()
    clock.now += 1.0
    assert breaker.allow_request()
    assert breaker.state is BreakerState.HALF_OPEN
