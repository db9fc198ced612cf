"""Sliding windows of call outcomes and of counts over time.

Both keep running totals so reading them is O(1); the time window groups events into
fixed slices (as Resilience4j and Finagle do) so its memory is bounded by its length,
not by the request rate. An event therefore leaves the window up to one slice early.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum

from chassis.resilience._clock import Clock

__all__ = ["CountWindow", "Outcome", "OutcomeTotals", "SlicedCounts", "TimeWindow"]


class Outcome(Enum):
    """How a recorded call ended; the value is its metric label."""

    SUCCESS = "success"
    FAILURE = "failure"
    SLOW_SUCCESS = "slow_success"
    SLOW_FAILURE = "slow_failure"

    @property
    def failed(self) -> bool:
        return self in (Outcome.FAILURE, Outcome.SLOW_FAILURE)

    @property
    def slow(self) -> bool:
        return self in (Outcome.SLOW_SUCCESS, Outcome.SLOW_FAILURE)


@dataclass(frozen=True, slots=True)
class OutcomeTotals:
    calls: int
    failed: int
    slow: int

    @property
    def failure_rate(self) -> float:
        """Percent of calls that failed (0.0 with no calls)."""
        return 100.0 * self.failed / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """Percent of calls slower than the threshold, failed or not (0.0 with no calls)."""
        return 100.0 * self.slow / self.calls if self.calls else 0.0


class CountWindow:
    """The outcomes of the last `size` calls."""

    def __init__(self, size: int) -> None:
        self._outcomes: deque[Outcome] = deque(maxlen=size)
        self._failed = 0
        self._slow = 0

    def record(self, outcome: Outcome) -> None:
        if len(self._outcomes) == self._outcomes.maxlen:
            self._count(self._outcomes[0], -1)
        self._outcomes.append(outcome)
        self._count(outcome, 1)

    def totals(self) -> OutcomeTotals:
        return OutcomeTotals(len(self._outcomes), self._failed, self._slow)

    def _count(self, outcome: Outcome, sign: int) -> None:
        self._failed += sign * outcome.failed
        self._slow += sign * outcome.slow


class SlicedCounts:
    """Integer counters summed over the last `slices * slice_seconds` seconds."""

    def __init__(self, *, fields: int, slices: int, slice_seconds: float, clock: Clock) -> None:
        self._slices = slices
        self._slice_seconds = slice_seconds
        self._clock = clock
        self._buckets: deque[tuple[int, list[int]]] = deque()
        self._totals = [0] * fields

    def add(self, *deltas: int) -> None:
        now = self._expire()
        if not self._buckets or self._buckets[-1][0] != now:
            self._buckets.append((now, [0] * len(self._totals)))
        bucket = self._buckets[-1][1]
        for i, delta in enumerate(deltas):
            bucket[i] += delta
            self._totals[i] += delta

    def totals(self) -> tuple[int, ...]:
        self._expire()
        return tuple(self._totals)

    def _expire(self) -> int:
        now = math.floor(self._clock.monotonic() / self._slice_seconds)
        while self._buckets and self._buckets[0][0] <= now - self._slices:
            _, expired = self._buckets.popleft()
            for i, count in enumerate(expired):
                self._totals[i] -= count
        return now


class TimeWindow:
    """The outcomes of the calls made in the last `seconds` seconds, in 1 s slices."""

    def __init__(self, seconds: int, *, clock: Clock) -> None:
        self._counts = SlicedCounts(fields=3, slices=seconds, slice_seconds=1.0, clock=clock)

    def record(self, outcome: Outcome) -> None:
        self._counts.add(1, int(outcome.failed), int(outcome.slow))

    def totals(self) -> OutcomeTotals:
        calls, failed, slow = self._counts.totals()
        return OutcomeTotals(calls, failed, slow)
