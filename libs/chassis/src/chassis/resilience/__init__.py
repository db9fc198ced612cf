"""Resilience for calls between services: circuit breakers, retries, bulkheads, deadlines.

Every primitive takes an injectable clock (and sleep, where it waits), so tests drive
time with `ManualClock` instead of sleeping. Errors are in `chassis.resilience.errors`.
"""

from chassis.resilience._breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerRegistry,
    CircuitState,
    CircuitStateTransition,
    SlidingWindowType,
)
from chassis.resilience._budget import RetryBudget
from chassis.resilience._bulkhead import Bulkhead
from chassis.resilience._clock import SYSTEM_CLOCK, Clock, ManualClock, Sleep, SystemClock
from chassis.resilience._deadline import (
    DEADLINE_HEADER,
    Deadline,
    current_deadline,
    deadline_scope,
    timeout_for,
)
from chassis.resilience._retry import Retrier, RetryPolicy
from chassis.resilience.errors import (
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceededError,
    ResilienceError,
)

__all__ = [
    "DEADLINE_HEADER",
    "SYSTEM_CLOCK",
    "Bulkhead",
    "BulkheadFullError",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerRegistry",
    "CircuitOpenError",
    "CircuitState",
    "CircuitStateTransition",
    "Clock",
    "Deadline",
    "DeadlineExceededError",
    "ManualClock",
    "ResilienceError",
    "Retrier",
    "RetryBudget",
    "RetryPolicy",
    "Sleep",
    "SlidingWindowType",
    "SystemClock",
    "current_deadline",
    "deadline_scope",
    "timeout_for",
]
