"""A retry budget per target, in the style of Finagle's RetryBudget.

Retries are allowed only while the retries made in the last `window` seconds stay within
`ratio` of the requests made in it, plus a floor of `min_retries_per_second` so a quiet
target can still retry. When a dependency fails outright, this caps the extra load
retries add at `ratio` (20% by default) instead of multiplying it by the attempt count.
"""

from __future__ import annotations

from chassis.resilience._clock import SYSTEM_CLOCK, Clock
from chassis.resilience._metrics import RETRY_BUDGET_EXHAUSTED, track_budget
from chassis.resilience._window import SlicedCounts

__all__ = ["RetryBudget"]

# Finagle's WindowedAdder also splits its window in ten: fine enough, bounded memory.
_SLICES = 10


class RetryBudget:
    """How many retries `target` may still take, shared by every call to it."""

    def __init__(
        self,
        target: str,
        *,
        ratio: float = 0.2,
        window: float = 10.0,
        min_retries_per_second: float = 3.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if ratio < 0:
            raise ValueError("ratio must not be negative")
        if window <= 0:
            raise ValueError("window must be positive")
        if min_retries_per_second < 0:
            raise ValueError("min_retries_per_second must not be negative")
        self.target = target
        self.ratio = ratio
        self.floor = min_retries_per_second * window
        # Counters: requests, retries.
        self._counts = SlicedCounts(
            fields=2, slices=_SLICES, slice_seconds=window / _SLICES, clock=clock
        )
        track_budget(self)

    def record_request(self) -> None:
        """Count one original request (not a retry); each one earns `ratio` retries."""
        self._counts.add(1, 0)

    def utilization(self) -> float:
        """Retries made in the window over the retries it allows (1.0: none left)."""
        requests, retries = self._counts.totals()
        allowed = self.ratio * requests + self.floor
        if not retries:
            return 0.0
        return min(retries / allowed, 1.0) if allowed > 0 else 1.0

    def try_acquire_retry(self) -> bool:
        """Spend one retry if the budget allows it; False (and counted) if it does not."""
        requests, retries = self._counts.totals()
        if retries + 1 > self.ratio * requests + self.floor:
            RETRY_BUDGET_EXHAUSTED.labels(self.target).inc()
            return False
        self._counts.add(0, 1)
        return True
