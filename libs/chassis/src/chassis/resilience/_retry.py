"""Retries with capped exponential backoff, full jitter, a retry budget and deadlines."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from chassis.resilience._budget import RetryBudget
from chassis.resilience._clock import Sleep
from chassis.resilience._deadline import current_deadline
from chassis.resilience._metrics import RETRY_ATTEMPTS
from chassis.resilience.errors import DeadlineExceededError

__all__ = ["Retrier", "RetryPolicy"]

P = ParamSpec("P")
T = TypeVar("T")

# 2**64 times any sane base delay is far past any cap; stops float overflow on huge attempts.
_MAX_EXPONENT = 64


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How often and how far apart to try; delays are seconds.

    `max_attempts` counts the first try, so 1 means never retry.
    """

    max_attempts: int = 3
    base_delay: float = 0.05
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Delay before retry number `retry` (0 for the first), with full jitter.

        Full jitter (uniform over [0, capped exponential]) spreads clients that failed
        together, so they do not retry in lockstep.
        """
        ceiling = min(self.max_delay, self.base_delay * 2 ** min(retry, _MAX_EXPONENT))
        return rng.uniform(0, ceiling)


class Retrier:
    """Retries calls to one target, within its budget and the caller's deadline.

    Only exceptions `is_retryable` accepts are retried. When the retry budget, the
    attempts or the time to the current deadline run out, the last failure is raised.
    Every attempt is counted in `mercato_retry_attempts_total` by outcome: success,
    retried, non_retryable, attempts_exhausted, budget_exhausted or deadline.
    """

    def __init__(
        self,
        target: str,
        policy: RetryPolicy | None = None,
        *,
        is_retryable: Callable[[Exception], bool],
        budget: RetryBudget | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.target = target
        self.policy = policy or RetryPolicy()
        self._is_retryable = is_retryable
        self._budget = budget
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await `fn(*args, **kwargs)`, retrying its failures as the policy allows.

        Raises `DeadlineExceededError` without calling `fn` if the deadline has passed.
        """
        if self._budget is not None:
            self._budget.record_request()
        retry = 0
        while True:
            deadline = current_deadline.get()
            if deadline is not None and deadline.expired:
                raise DeadlineExceededError(f"deadline passed before calling {self.target!r}")
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                outcome, delay = self._plan_retry(retry, exc)
                self._count(outcome)
                if delay is None:
                    raise
                await self._sleep(delay)
                retry += 1
            else:
                self._count("success")
                return result

    def _plan_retry(self, retry: int, exc: Exception) -> tuple[str, float | None]:
        """The outcome label of the failed attempt and the backoff, None to give up."""
        if not self._is_retryable(exc):
            return "non_retryable", None
        if retry + 1 >= self.policy.max_attempts:
            return "attempts_exhausted", None
        delay = self.policy.backoff(retry, self._rng)
        deadline = current_deadline.get()
        # Waking up at or after the deadline would only start a call nobody waits for.
        if deadline is not None and deadline.remaining() <= delay:
            return "deadline", None
        # Asked last so the budget is spent only on retries that will really happen.
        if self._budget is not None and not self._budget.try_acquire_retry():
            return "budget_exhausted", None
        return "retried", delay

    def _count(self, outcome: str) -> None:
        RETRY_ATTEMPTS.labels(self.target, outcome).inc()
