"""Prometheus metrics of the resilience primitives.

Defined once per process on the default registry: every breaker, budget and bulkhead
shares them and tells itself apart by label, so creating many of them never registers
a metric twice.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = [
    "BREAKER_CALLS",
    "BREAKER_STATE",
    "BREAKER_TRANSITIONS",
    "BULKHEAD_IN_FLIGHT",
    "BULKHEAD_REJECTED",
    "RETRY_ATTEMPTS",
    "RETRY_BUDGET_EXHAUSTED",
]

BREAKER_TRANSITIONS = Counter(
    "mercato_circuit_breaker_transitions_total",
    "Circuit breaker state transitions",
    ["breaker", "from_state", "to_state"],
)
BREAKER_STATE = Gauge(
    "mercato_circuit_breaker_state",
    "Circuit breaker state: 0 closed, 1 open, 2 half_open, 3 forced_open",
    ["breaker"],
)
BREAKER_CALLS = Counter(
    "mercato_circuit_breaker_calls_total",
    "Calls seen by a circuit breaker, by outcome "
    "(success, failure, slow_success, slow_failure, ignored, rejected)",
    ["breaker", "outcome"],
)
RETRY_ATTEMPTS = Counter(
    "mercato_retry_attempts_total",
    "Attempts made by the retrier, by what happened after each one",
    ["target", "outcome"],
)
RETRY_BUDGET_EXHAUSTED = Counter(
    "mercato_retry_budget_exhausted_total",
    "Retries a retry budget refused because too many retries were already made",
    ["target"],
)
BULKHEAD_IN_FLIGHT = Gauge(
    "mercato_bulkhead_in_flight",
    "Calls in flight through a bulkhead",
    ["bulkhead"],
)
BULKHEAD_REJECTED = Counter(
    "mercato_bulkhead_rejected_total",
    "Calls a full bulkhead rejected",
    ["bulkhead"],
)
