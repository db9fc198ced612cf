"""A retry budget's use is exported as a ratio, read when scraped, per target."""

from __future__ import annotations

import gc
import uuid

from prometheus_client import REGISTRY

from chassis.resilience import ManualClock, RetryBudget

METRIC = "mercato_retry_budget_utilization_ratio"


def utilization(target: str) -> float | None:
    return REGISTRY.get_sample_value(METRIC, {"target": target})


def test_utilization_is_retries_over_what_the_window_allows() -> None:
    clock = ManualClock()
    target = f"svc-{uuid.uuid4().hex[:8]}"
    budget = RetryBudget(target, ratio=0.2, window=10.0, min_retries_per_second=0.0, clock=clock)
    assert utilization(target) == 0.0

    for _ in range(20):
        budget.record_request()  # 20 requests earn 4 retries
    assert budget.try_acquire_retry()
    assert utilization(target) == 0.25
    for _ in range(3):
        assert budget.try_acquire_retry()
    assert utilization(target) == 1.0
    assert not budget.try_acquire_retry()  # exhausted, and refused retries are not counted
    assert utilization(target) == 1.0

    clock.advance(11.0)  # the window forgets; no call is needed for the gauge to follow
    assert utilization(target) == 0.0


def test_the_floor_counts_as_allowance() -> None:
    clock = ManualClock()
    target = f"svc-{uuid.uuid4().hex[:8]}"
    budget = RetryBudget(target, ratio=0.2, window=10.0, min_retries_per_second=1.0, clock=clock)
    for _ in range(5):
        assert budget.try_acquire_retry()
    assert utilization(target) == 0.5  # 5 of the floor's 10


def test_an_idle_budget_reports_nothing_used() -> None:
    target = f"svc-{uuid.uuid4().hex[:8]}"
    budget = RetryBudget(target, ratio=0.0, min_retries_per_second=0.0, clock=ManualClock())
    assert budget.utilization() == 0.0
    assert not budget.try_acquire_retry()  # it allows nothing, and nothing was used
    assert utilization(target) == 0.0


def test_a_dropped_budget_leaves_the_metric() -> None:
    target = f"svc-{uuid.uuid4().hex[:8]}"
    budget = RetryBudget(target, clock=ManualClock())
    assert utilization(target) == 0.0
    del budget
    gc.collect()
    assert utilization(target) is None
