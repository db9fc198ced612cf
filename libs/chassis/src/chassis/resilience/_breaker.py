"""A circuit breaker with Resilience4j's semantics, plus a registry of them by name.

CLOSED counts outcomes in a sliding window (by call count or by time); once the window
holds `minimum_number_of_calls`, a failure rate or slow-call rate at or above its
threshold opens the circuit. OPEN rejects every call for `wait_duration_in_open_state`,
then the next call attempt moves it to HALF_OPEN, which lets exactly
`permitted_number_of_calls_in_half_open_state` probes through and judges them the same
way: at or above a threshold it opens again, otherwise it closes with a fresh window.

Transitions happen lazily, when a call asks for permission, so no timers run. One breaker
belongs to one event loop and is not thread-safe.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import NoReturn, ParamSpec, TypeVar

import structlog

from chassis.resilience._clock import SYSTEM_CLOCK, Clock
from chassis.resilience._metrics import BREAKER_CALLS, BREAKER_STATE, BREAKER_TRANSITIONS
from chassis.resilience._window import CountWindow, Outcome, OutcomeTotals, TimeWindow
from chassis.resilience.errors import CircuitOpenError

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerRegistry",
    "CircuitState",
    "CircuitStateTransition",
    "SlidingWindowType",
]

P = ParamSpec("P")
T = TypeVar("T")

_log = structlog.get_logger("chassis.resilience")


class SlidingWindowType(Enum):
    """Whether the closed-state window holds the last N calls or the last N seconds."""

    COUNT = "count"
    TIME = "time"


class CircuitState(Enum):
    """Where a breaker is; FORCED_OPEN (from `force_open()`) lasts until `reset()`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"


_GAUGE_VALUE = {
    CircuitState.CLOSED: 0,
    CircuitState.OPEN: 1,
    CircuitState.HALF_OPEN: 2,
    CircuitState.FORCED_OPEN: 3,
}


def _every_exception_is_a_failure(exc: BaseException) -> bool:
    return True


@dataclass(frozen=True, kw_only=True, slots=True)
class CircuitBreakerConfig:
    """How a breaker judges its dependency; defaults are Resilience4j's.

    Sizes are in calls for a COUNT window and in whole seconds for a TIME window; rates
    are percentages; durations are seconds. `is_failure` (Resilience4j's
    `recordException`) decides which exceptions count as failures: the others are
    ignored, counting as neither success nor failure.
    """

    sliding_window_type: SlidingWindowType = SlidingWindowType.COUNT
    sliding_window_size: int = 100
    minimum_number_of_calls: int = 100
    failure_rate_threshold: float = 50.0
    slow_call_duration_threshold: float = 60.0
    slow_call_rate_threshold: float = 100.0
    wait_duration_in_open_state: float = 60.0
    permitted_number_of_calls_in_half_open_state: int = 10
    max_wait_duration_in_half_open_state: float | None = None
    is_failure: Callable[[BaseException], bool] = _every_exception_is_a_failure

    def __post_init__(self) -> None:
        for name in (
            "sliding_window_size",
            "minimum_number_of_calls",
            "permitted_number_of_calls_in_half_open_state",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            if not 0 < getattr(self, name) <= 100:
                raise ValueError(f"{name} must be a percentage in (0, 100]")
        if self.slow_call_duration_threshold <= 0:
            raise ValueError("slow_call_duration_threshold must be positive")
        if self.wait_duration_in_open_state < 0:
            raise ValueError("wait_duration_in_open_state must not be negative")
        if (
            self.max_wait_duration_in_half_open_state is not None
            and self.max_wait_duration_in_half_open_state <= 0
        ):
            raise ValueError("max_wait_duration_in_half_open_state must be positive")


@dataclass(frozen=True, slots=True)
class CircuitStateTransition:
    """What a listener hears when a breaker changes state.

    Rates are percentages of the window being left, None if it held too few calls.
    """

    breaker: str
    from_state: CircuitState
    to_state: CircuitState
    failure_rate: float | None
    slow_call_rate: float | None


Listener = Callable[[CircuitStateTransition], None]


class CircuitBreaker:
    """Stops calling a dependency that keeps failing or is too slow, then probes it.

    Use `call(fn, ...)`, or for outcomes that are not exceptions (an HTTP 5xx response)
    `acquire_permission()` then exactly one of `on_success`, `on_error` or
    `release_permission`.
    """

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = name
        self.config = config or CircuitBreakerConfig()
        self._clock = clock
        self._listeners: list[Listener] = []
        self._state = CircuitState.CLOSED
        self._entered_at = clock.monotonic()
        self._window, self._minimum_calls = self._closed_window()
        self._probes_left = 0
        BREAKER_STATE.labels(name).set(_GAUGE_VALUE[self._state])

    @property
    def state(self) -> CircuitState:
        return self._state

    @property
    def failure_rate(self) -> float | None:
        """Failure percentage of the current window, None below the minimum number of calls."""
        totals = self._evaluable_totals()
        return None if totals is None else totals.failure_rate

    @property
    def slow_call_rate(self) -> float | None:
        """Slow-call percentage of the current window, None below the minimum number of calls."""
        totals = self._evaluable_totals()
        return None if totals is None else totals.slow_call_rate

    def add_listener(self, listener: Listener) -> None:
        """Call `listener` on every state transition (its exceptions are logged, not raised)."""
        self._listeners.append(listener)

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await `fn(*args, **kwargs)` if the breaker permits it, recording how it went.

        Raises `CircuitOpenError` without calling `fn` when the breaker is not permitting.
        """
        self.acquire_permission()
        start = self._clock.monotonic()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self.on_error(self._clock.monotonic() - start, exc)
            raise
        except BaseException:
            # Cancelled (e.g. by the caller's timeout): says nothing about the dependency.
            self.release_permission()
            raise
        self.on_success(self._clock.monotonic() - start)
        return result

    def acquire_permission(self) -> None:
        """Take permission for one call, or raise `CircuitOpenError`."""
        now = self._clock.monotonic()
        if self._state is CircuitState.OPEN:
            remaining = self._entered_at + self.config.wait_duration_in_open_state - now
            if remaining > 0:
                self._reject(remaining)
            self._transition(CircuitState.HALF_OPEN)
        elif self._state is CircuitState.HALF_OPEN and self._half_open_timed_out(now):
            self._transition(CircuitState.OPEN)
            self._reject(self.config.wait_duration_in_open_state)

        if self._state is CircuitState.FORCED_OPEN:
            self._reject(math.inf)
        if self._state is CircuitState.HALF_OPEN:
            if self._probes_left == 0:
                self._reject(0.0)
            self._probes_left -= 1

    def on_success(self, duration: float) -> None:
        """Record a permitted call that succeeded after `duration` seconds."""
        slow = duration > self.config.slow_call_duration_threshold
        self._record(Outcome.SLOW_SUCCESS if slow else Outcome.SUCCESS)

    def on_error(self, duration: float, exc: BaseException | None = None) -> None:
        """Record a permitted call that failed after `duration` seconds.

        Pass the exception to let `config.is_failure` ignore it; pass none for a failure
        that is not an exception, such as an HTTP 5xx response.
        """
        if exc is not None and not self.config.is_failure(exc):
            self.release_permission()
            return
        slow = duration > self.config.slow_call_duration_threshold
        self._record(Outcome.SLOW_FAILURE if slow else Outcome.FAILURE)

    def release_permission(self) -> None:
        """Give back a permission whose call ended without a verdict; counts as ignored."""
        BREAKER_CALLS.labels(self.name, "ignored").inc()
        if self._state is CircuitState.HALF_OPEN:
            limit = self.config.permitted_number_of_calls_in_half_open_state
            self._probes_left = min(self._probes_left + 1, limit)

    def force_open(self) -> None:
        """Reject every call until `reset()`."""
        if self._state is not CircuitState.FORCED_OPEN:
            self._transition(CircuitState.FORCED_OPEN)

    def reset(self) -> None:
        """Close the circuit and forget every recorded outcome."""
        if self._state is CircuitState.CLOSED:
            self._window, self._minimum_calls = self._closed_window()
        else:
            self._transition(CircuitState.CLOSED)

    def _record(self, outcome: Outcome) -> None:
        BREAKER_CALLS.labels(self.name, outcome.value).inc()
        # Calls permitted before the circuit opened may finish while it is open; like
        # Resilience4j, their outcome cannot change an open circuit.
        if self._state not in (CircuitState.CLOSED, CircuitState.HALF_OPEN):
            return
        self._window.record(outcome)
        totals = self._evaluable_totals()
        if totals is None:
            return
        if (
            totals.failure_rate >= self.config.failure_rate_threshold
            or totals.slow_call_rate >= self.config.slow_call_rate_threshold
        ):
            self._transition(CircuitState.OPEN)
        elif self._state is CircuitState.HALF_OPEN:
            self._transition(CircuitState.CLOSED)

    def _evaluable_totals(self) -> OutcomeTotals | None:
        totals = self._window.totals()
        return totals if totals.calls >= self._minimum_calls else None

    def _half_open_timed_out(self, now: float) -> bool:
        limit = self.config.max_wait_duration_in_half_open_state
        return limit is not None and now - self._entered_at >= limit

    def _closed_window(self) -> tuple[CountWindow | TimeWindow, int]:
        cfg = self.config
        if cfg.sliding_window_type is SlidingWindowType.TIME:
            return TimeWindow(cfg.sliding_window_size, clock=self._clock), (
                cfg.minimum_number_of_calls
            )
        # As in Resilience4j: a count window can never hold more calls than its size.
        minimum = min(cfg.minimum_number_of_calls, cfg.sliding_window_size)
        return CountWindow(cfg.sliding_window_size), minimum

    def _reject(self, remaining_wait: float) -> NoReturn:
        BREAKER_CALLS.labels(self.name, "rejected").inc()
        raise CircuitOpenError(
            self.name, state=self._state.value, remaining_wait=max(remaining_wait, 0.0)
        )

    def _transition(self, to_state: CircuitState) -> None:
        event = CircuitStateTransition(
            self.name, self._state, to_state, self.failure_rate, self.slow_call_rate
        )
        self._state = to_state
        self._entered_at = self._clock.monotonic()
        if to_state is CircuitState.CLOSED:
            self._window, self._minimum_calls = self._closed_window()
        elif to_state is CircuitState.HALF_OPEN:
            probes = self.config.permitted_number_of_calls_in_half_open_state
            self._window, self._minimum_calls = CountWindow(probes), probes
            self._probes_left = probes
        # Entering OPEN keeps the window, so its rates stay readable while open.

        BREAKER_TRANSITIONS.labels(self.name, event.from_state.value, to_state.value).inc()
        BREAKER_STATE.labels(self.name).set(_GAUGE_VALUE[to_state])
        _log.info(
            "circuit_breaker_state_changed",
            breaker=self.name,
            from_state=event.from_state.value,
            to_state=to_state.value,
            failure_rate=event.failure_rate,
            slow_call_rate=event.slow_call_rate,
        )
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # A broken listener must not break the call path it observes.
                _log.exception("circuit_breaker_listener_failed", breaker=self.name)


class CircuitBreakerRegistry:
    """One breaker per name (a target service, or "service/instance"), made on first use."""

    def __init__(
        self,
        default_config: CircuitBreakerConfig | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._default_config = default_config or CircuitBreakerConfig()
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str, *, config: CircuitBreakerConfig | None = None) -> CircuitBreaker:
        """The breaker called `name`; `config` applies only if this call creates it."""
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(name, config or self._default_config, clock=self._clock)
            self._breakers[name] = breaker
        return breaker

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(self._breakers.values())
