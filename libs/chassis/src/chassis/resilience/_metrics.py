"""Prometheus metrics of the resilience primitives.

Defined once per process on the default registry: every breaker, budget and bulkhead
shares them and tells itself apart by label, so creating many of them never registers
a metric twice.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "BREAKER_CALLS",
    "BREAKER_STATE",
    "BREAKER_TRANSITIONS",
    "BULKHEAD_IN_FLIGHT",
    "BULKHEAD_REJECTED",
    "RETRY_ATTEMPTS",
    "RETRY_BUDGET_EXHAUSTED",
    "track_budget",
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


class _Budget(Protocol):
    @property
    def target(self) -> str: ...
    def utilization(self) -> float: ...


class _BudgetUtilization(Collector):
    """Each target's retry budget use, read when scraped (a window decays between calls)."""

    def __init__(self) -> None:
        self._budgets: weakref.WeakSet[_Budget] = weakref.WeakSet()

    def track(self, budget: _Budget) -> None:
        self._budgets.add(budget)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "mercato_retry_budget_utilization_ratio",
            "Retries made in a retry budget's window over the retries it allows there "
            "(1 = exhausted: further retries are refused), by target",
            labels=["target"],
        )
        used: dict[str, float] = {}
        for budget in list(self._budgets):
            used[budget.target] = max(used.get(budget.target, 0.0), budget.utilization())
        for target, ratio in sorted(used.items()):
            family.add_metric([target], ratio)
        yield family


_BUDGETS = _BudgetUtilization()
REGISTRY.register(_BUDGETS)


def track_budget(budget: _Budget) -> None:
    """Report `budget`'s use in `mercato_retry_budget_utilization_ratio` while it lives."""
    _BUDGETS.track(budget)
