"""Errors the resilience primitives raise when they refuse work on purpose.

Each one means "this call was not (fully) attempted", never "the dependency said no", so
callers can tell shed load from real downstream failures. Only the edge maps them to HTTP
(typically 503 for the first two, 504 for the last).

    ResilienceError
    ├── CircuitOpenError        a circuit breaker rejected the call without trying it
    ├── BulkheadFullError       too many calls to that target are in flight already
    └── DeadlineExceededError   the caller's deadline has passed (or has no time left)

A retry that the retry budget denies re-raises the failure it would have retried, so the
budget has no error of its own.
"""

from __future__ import annotations

__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "DeadlineExceededError",
    "ResilienceError",
]


class ResilienceError(Exception):
    """Base of every error a resilience primitive raises to shed or refuse a call."""


class CircuitOpenError(ResilienceError):
    """The circuit breaker `breaker` is open (or its half-open probes are all taken).

    `remaining_wait` is how many seconds until it lets a probe through: 0.0 while half-open
    probes are in flight, `math.inf` while forced open.
    """

    def __init__(self, breaker: str, *, state: str, remaining_wait: float) -> None:
        super().__init__(f"circuit breaker {breaker!r} is {state}; retry in {remaining_wait:.3f}s")
        self.breaker = breaker
        self.state = state
        self.remaining_wait = remaining_wait


class BulkheadFullError(ResilienceError):
    """The bulkhead `bulkhead` already has `max_concurrent` calls in flight."""

    def __init__(self, bulkhead: str, *, max_concurrent: int) -> None:
        super().__init__(f"bulkhead {bulkhead!r} is full ({max_concurrent} calls in flight)")
        self.bulkhead = bulkhead
        self.max_concurrent = max_concurrent


class DeadlineExceededError(ResilienceError):
    """The caller's deadline has passed, so starting (or continuing) the work is pointless."""

    def __init__(self, detail: str = "deadline exceeded") -> None:
        super().__init__(detail)
        self.detail = detail
