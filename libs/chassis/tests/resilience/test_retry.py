"""Retries back off with full jitter, stay within the retry budget and the deadline."""

from __future__ import annotations

import random
from typing import Any

import pytest
from prometheus_client import REGISTRY

from chassis.resilience import (
    Deadline,
    DeadlineExceededError,
    ManualClock,
    Retrier,
    RetryBudget,
    RetryPolicy,
    deadline_scope,
)

ATTEMPT_OUTCOMES = (
    "success",
    "retried",
    "non_retryable",
    "attempts_exhausted",
    "budget_exhausted",
    "deadline",
)


class Unavailable(Exception):
    pass


class BadRequest(Exception):
    pass


def is_unavailable(exc: Exception) -> bool:
    return isinstance(exc, Unavailable)


class Dependency:
    """Fails the first `failures` calls with `exc`, then answers "ok"."""

    def __init__(self, failures: float, exc: Exception | None = None) -> None:
        self.failures = failures
        self.exc = exc or Unavailable()
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return "ok"


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class CeilingRandom(random.Random):
    """Always draws the top of the range, to make jittered delays exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


def attempts(target: str, outcome: str) -> float:
    labels = {"target": target, "outcome": outcome}
    return REGISTRY.get_sample_value("mercato_retry_attempts_total", labels) or 0.0


def exhausted(target: str) -> float:
    labels = {"target": target}
    return REGISTRY.get_sample_value("mercato_retry_budget_exhausted_total", labels) or 0.0


@pytest.fixture
def target(request: pytest.FixtureRequest) -> str:
    # Metrics live on the process-wide registry: a target per test keeps counts apart.
    return f"target-{request.node.name}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


POLICY = RetryPolicy(max_attempts=5, base_delay=0.1, max_delay=1.0)


async def test_budget_bounds_attempts_against_a_dependency_that_always_fails(
    target: str, clock: ManualClock
) -> None:
    budget = RetryBudget(target, ratio=0.2, window=10.0, min_retries_per_second=3.0, clock=clock)
    retrier = Retrier(
        target, POLICY, is_retryable=is_unavailable, budget=budget, sleep=RecordingSleep()
    )
    dependency = Dependency(failures=float("inf"))
    requests = 1000

    for _ in range(requests):
        with pytest.raises(Unavailable):
            await retrier.call(dependency)

    assert budget.floor == 30.0
    # Without the budget this would be 5 * 1000 attempts.
    assert dependency.calls <= 1.2 * requests + budget.floor
    assert dependency.calls == 1230  # the bound is reached, not merely respected
    assert sum(attempts(target, outcome) for outcome in ATTEMPT_OUTCOMES) == dependency.calls
    assert attempts(target, "retried") == 230
    assert exhausted(target) == attempts(target, "budget_exhausted") > 0


async def test_a_non_retryable_error_is_not_retried(target: str) -> None:
    sleep = RecordingSleep()
    retrier = Retrier(target, POLICY, is_retryable=is_unavailable, sleep=sleep)
    dependency = Dependency(failures=1, exc=BadRequest())

    with pytest.raises(BadRequest):
        await retrier.call(dependency)

    assert dependency.calls == 1
    assert sleep.delays == []
    assert attempts(target, "non_retryable") == 1


async def test_retries_until_the_call_succeeds(target: str) -> None:
    sleep = RecordingSleep()
    retrier = Retrier(target, POLICY, is_retryable=is_unavailable, sleep=sleep, rng=CeilingRandom())
    dependency = Dependency(failures=3)

    assert await retrier.call(dependency) == "ok"

    assert dependency.calls == 4
    assert sleep.delays == [0.1, 0.2, 0.4]
    assert attempts(target, "retried") == 3
    assert attempts(target, "success") == 1


async def test_stops_after_max_attempts(target: str) -> None:
    sleep = RecordingSleep()
    retrier = Retrier(target, POLICY, is_retryable=is_unavailable, sleep=sleep)
    dependency = Dependency(failures=10)

    with pytest.raises(Unavailable):
        await retrier.call(dependency)

    assert dependency.calls == 5
    assert len(sleep.delays) == 4
    assert attempts(target, "attempts_exhausted") == 1


async def test_a_denied_retry_reraises_the_failure(target: str, clock: ManualClock) -> None:
    budget = RetryBudget(target, ratio=0.0, min_retries_per_second=0.0, clock=clock)
    retrier = Retrier(
        target, POLICY, is_retryable=is_unavailable, budget=budget, sleep=RecordingSleep()
    )
    dependency = Dependency(failures=1)

    with pytest.raises(Unavailable):
        await retrier.call(dependency)

    assert dependency.calls == 1
    assert exhausted(target) == 1


async def test_never_sleeps_past_the_deadline(target: str, clock: ManualClock) -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.4, max_delay=10.0)
    retrier = Retrier(
        target, policy, is_retryable=is_unavailable, sleep=clock.sleep, rng=CeilingRandom()
    )
    dependency = Dependency(failures=10)

    with deadline_scope(Deadline.after(1.0, clock=clock)), pytest.raises(Unavailable):
        await retrier.call(dependency)

    # Slept 0.4 s; the next 0.8 s backoff would end past the 0.6 s left.
    assert dependency.calls == 2
    assert clock.monotonic() == 0.4
    assert attempts(target, "deadline") == 1


async def test_an_expired_deadline_makes_no_call(target: str, clock: ManualClock) -> None:
    retrier = Retrier(target, POLICY, is_retryable=is_unavailable, sleep=clock.sleep)
    dependency = Dependency(failures=0)
    deadline = Deadline.after(1.0, clock=clock)
    clock.advance(1.0)

    with deadline_scope(deadline), pytest.raises(DeadlineExceededError):
        await retrier.call(dependency)

    assert dependency.calls == 0


def test_jittered_delays_stay_within_zero_and_the_capped_exponential() -> None:
    rng = random.Random(7)

    for retry in range(12):
        ceiling = min(1.0, 0.1 * 2**retry)
        delays = [POLICY.backoff(retry, rng) for _ in range(500)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        # Full jitter spreads delays over the whole range, not near the ceiling.
        assert min(delays) < 0.05 * ceiling
        assert max(delays) > 0.95 * ceiling


def test_backoff_doubles_then_stays_at_the_cap() -> None:
    rng = CeilingRandom()

    delays = [POLICY.backoff(retry, rng) for retry in range(7)]

    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert POLICY.backoff(100_000, rng) == 1.0  # no float overflow on absurd attempt counts


def test_budget_floor_allows_retries_without_requests(target: str, clock: ManualClock) -> None:
    budget = RetryBudget(target, ratio=0.2, window=10.0, min_retries_per_second=3.0, clock=clock)

    granted = [budget.try_acquire_retry() for _ in range(31)]

    assert granted == [True] * 30 + [False]
    assert exhausted(target) == 1


def test_budget_forgets_requests_and_retries_older_than_its_window(
    target: str, clock: ManualClock
) -> None:
    budget = RetryBudget(target, ratio=0.5, window=10.0, min_retries_per_second=0.0, clock=clock)
    budget.record_request()
    budget.record_request()
    assert budget.try_acquire_retry()
    assert not budget.try_acquire_retry()

    clock.advance(9.0)
    assert not budget.try_acquire_retry()  # still inside the window

    clock.advance(1.0)
    assert not budget.try_acquire_retry()  # the window is empty: no requests, no retries
    budget.record_request()
    budget.record_request()
    assert budget.try_acquire_retry()
    assert not budget.try_acquire_retry()


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -0.1}, {"max_delay": -1.0}],
)
def test_policy_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"ratio": -0.1}, {"window": 0.0}, {"min_retries_per_second": -1.0}],
)
def test_budget_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RetryBudget("t", **kwargs)
