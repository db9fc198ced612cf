"""The manual clock moves only when told, and the errors form one hierarchy."""

from __future__ import annotations

import time

import pytest

from chassis.resilience import (
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceededError,
    ManualClock,
    ResilienceError,
    SystemClock,
)


async def test_manual_clock_advances_only_when_told() -> None:
    clock = ManualClock(start=10.0)
    assert clock.monotonic() == 10.0

    clock.advance(1.5)
    await clock.sleep(2.0)

    assert clock.monotonic() == 13.5


def test_manual_clock_cannot_go_back() -> None:
    with pytest.raises(ValueError, match="cannot go back"):
        ManualClock().advance(-1.0)


def test_system_clock_is_the_monotonic_clock() -> None:
    before = time.monotonic()
    reading = SystemClock().monotonic()
    assert before <= reading <= time.monotonic()


@pytest.mark.parametrize(
    "error",
    [
        CircuitOpenError("b", state="open", remaining_wait=1.0),
        BulkheadFullError("b", max_concurrent=2),
        DeadlineExceededError(),
    ],
)
def test_every_error_is_a_resilience_error(error: Exception) -> None:
    assert isinstance(error, ResilienceError)
    assert ResilienceError.__bases__ == (Exception,)
