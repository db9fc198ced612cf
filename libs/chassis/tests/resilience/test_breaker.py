"""The circuit breaker keeps Resilience4j's semantics, driven by a manual clock."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from chassis.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerRegistry,
    CircuitOpenError,
    CircuitState,
    CircuitStateTransition,
    ManualClock,
    SlidingWindowType,
)

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

CONFIG = CircuitBreakerConfig(
    sliding_window_type=SlidingWindowType.COUNT,
    sliding_window_size=10,
    minimum_number_of_calls=10,
    failure_rate_threshold=50.0,
    slow_call_duration_threshold=2.0,
    slow_call_rate_threshold=50.0,
    wait_duration_in_open_state=30.0,
    permitted_number_of_calls_in_half_open_state=3,
)


class Boom(Exception):
    pass


class Harmless(Exception):
    pass


class Downstream:
    """A fake dependency that counts how often it is really called."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls = 0

    async def ok(self, *, takes: float = 0.0) -> str:
        self.calls += 1
        self.clock.advance(takes)
        return "ok"

    async def fail(self, *, takes: float = 0.0, exc: type[Exception] = Boom) -> str:
        self.calls += 1
        self.clock.advance(takes)
        raise exc


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    # Metrics live on the process-wide registry: a name per test keeps counts apart.
    return f"breaker-{request.node.name}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def downstream(clock: ManualClock) -> Downstream:
    return Downstream(clock)


def make_breaker(
    name: str, clock: ManualClock, **overrides: Any
) -> tuple[CircuitBreaker, list[CircuitStateTransition]]:
    breaker = CircuitBreaker(name, dataclasses.replace(CONFIG, **overrides), clock=clock)
    events: list[CircuitStateTransition] = []
    breaker.add_listener(events.append)
    return breaker, events


async def fail_times(breaker: CircuitBreaker, downstream: Downstream, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            await breaker.call(downstream.fail)


async def succeed_times(breaker: CircuitBreaker, downstream: Downstream, n: int) -> None:
    for _ in range(n):
        assert await breaker.call(downstream.ok) == "ok"


async def open_breaker(breaker: CircuitBreaker, downstream: Downstream) -> None:
    await fail_times(breaker, downstream, 10)
    assert breaker.state is OPEN


async def test_nine_failures_stay_closed_and_the_tenth_opens_exactly_once(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, events = make_breaker(name, clock)
    transitions = {"breaker": name, "from_state": "closed", "to_state": "open"}

    await fail_times(breaker, downstream, 9)
    assert breaker.state is CLOSED
    assert events == []
    assert sample("mercato_circuit_breaker_transitions_total", **transitions) == 0
    assert sample("mercato_circuit_breaker_state", breaker=name) == 0

    with capture_logs() as logs:
        await fail_times(breaker, downstream, 1)

    assert breaker.state is OPEN
    assert events == [CircuitStateTransition(name, CLOSED, OPEN, 100.0, 0.0)]
    assert sample("mercato_circuit_breaker_transitions_total", **transitions) == 1
    assert sample("mercato_circuit_breaker_state", breaker=name) == 1
    assert sample("mercato_circuit_breaker_calls_total", breaker=name, outcome="failure") == 10
    assert logs == [
        {
            "event": "circuit_breaker_state_changed",
            "log_level": "info",
            "breaker": name,
            "from_state": "closed",
            "to_state": "open",
            "failure_rate": 100.0,
            "slow_call_rate": 0.0,
        }
    ]


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(4, CLOSED), (5, OPEN)],
    ids=["40-percent-stays-closed", "50-percent-opens"],
)
async def test_a_failure_rate_at_the_threshold_opens(
    name: str, clock: ManualClock, downstream: Downstream, failures: int, expected: CircuitState
) -> None:
    breaker, _ = make_breaker(name, clock)

    await succeed_times(breaker, downstream, 10 - failures)
    await fail_times(breaker, downstream, failures)

    assert breaker.state is expected


async def test_open_makes_no_downstream_call_until_the_wait_has_elapsed(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, _ = make_breaker(name, clock)
    await open_breaker(breaker, downstream)
    calls_before = downstream.calls

    clock.advance(29.5)
    for _ in range(5):
        with pytest.raises(CircuitOpenError) as caught:
            await breaker.call(downstream.ok)
        assert caught.value.breaker == name
        assert caught.value.remaining_wait == pytest.approx(0.5)

    assert downstream.calls == calls_before
    assert breaker.state is OPEN
    assert sample("mercato_circuit_breaker_calls_total", breaker=name, outcome="rejected") == 5

    clock.advance(0.5)
    assert await breaker.call(downstream.ok) == "ok"
    assert downstream.calls == calls_before + 1
    assert breaker.state is HALF_OPEN


async def test_half_open_admits_exactly_k_concurrent_probes(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, _ = make_breaker(name, clock)
    await open_breaker(breaker, downstream)
    clock.advance(30.0)
    release = asyncio.Event()
    in_flight = 0
    most_in_flight = 0

    async def probe() -> str:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await release.wait()
        in_flight -= 1
        return "ok"

    probes = [asyncio.create_task(breaker.call(probe)) for _ in range(3)]
    for _ in range(10):  # a few loop turns let every probe start
        await asyncio.sleep(0)
    calls_before = downstream.calls

    # A non-blocking extra call, so a breaker that wrongly admits it fails fast.
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(downstream.ok)
    assert downstream.calls == calls_before
    assert caught.value.state == "half_open"
    assert caught.value.remaining_wait == 0.0
    assert most_in_flight == 3
    assert breaker.state is HALF_OPEN

    release.set()
    assert await asyncio.gather(*probes) == ["ok", "ok", "ok"]
    assert most_in_flight == 3
    assert breaker.state is CLOSED


@pytest.mark.parametrize(
    ("probes_fail", "expected", "to_state"),
    [
        ([False, False, False], CLOSED, "closed"),
        ([True, False, False], CLOSED, "closed"),
        ([True, True, False], OPEN, "open"),
        ([True, True, True], OPEN, "open"),
    ],
    ids=["all-succeed", "one-fails", "two-fail", "all-fail"],
)
async def test_half_open_probes_decide_between_closed_and_open(
    name: str,
    clock: ManualClock,
    downstream: Downstream,
    probes_fail: list[bool],
    expected: CircuitState,
    to_state: str,
) -> None:
    breaker, events = make_breaker(name, clock)
    await open_breaker(breaker, downstream)
    clock.advance(30.0)

    for index, fails in enumerate(probes_fail):
        assert breaker.state is (HALF_OPEN if index else OPEN)
        if fails:
            await fail_times(breaker, downstream, 1)
        else:
            await succeed_times(breaker, downstream, 1)

    assert breaker.state is expected
    assert [(e.from_state, e.to_state) for e in events] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, expected),
    ]
    moves = {"breaker": name, "from_state": "half_open", "to_state": to_state}
    assert sample("mercato_circuit_breaker_transitions_total", **moves) == 1


async def test_closing_after_half_open_starts_a_fresh_window(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, _ = make_breaker(name, clock)
    await open_breaker(breaker, downstream)
    clock.advance(30.0)
    await succeed_times(breaker, downstream, 3)
    assert breaker.state is CLOSED

    await fail_times(breaker, downstream, 9)

    assert breaker.state is CLOSED
    assert breaker.failure_rate is None


async def test_slow_calls_open_the_breaker_by_slow_call_rate(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, events = make_breaker(name, clock)

    for _ in range(6):
        await breaker.call(downstream.ok, takes=2.0)  # at the threshold: not slow
    for _ in range(4):
        await breaker.call(downstream.ok, takes=2.5)
    assert breaker.state is CLOSED  # 4 of 10 slow: 40%
    await breaker.call(downstream.ok, takes=2.5)

    # The oldest fast call left the window: 5 of 10 slow reaches the 50% threshold.
    assert breaker.state is OPEN
    assert events == [CircuitStateTransition(name, CLOSED, OPEN, 0.0, 50.0)]
    assert sample("mercato_circuit_breaker_calls_total", breaker=name, outcome="slow_success") == 5
    assert sample("mercato_circuit_breaker_calls_total", breaker=name, outcome="success") == 6


async def test_slow_failures_count_as_both_failed_and_slow(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, events = make_breaker(name, clock, failure_rate_threshold=100.0)

    await succeed_times(breaker, downstream, 5)
    for _ in range(5):
        with pytest.raises(Boom):
            await breaker.call(downstream.fail, takes=3.0)

    assert breaker.state is OPEN
    assert events == [CircuitStateTransition(name, CLOSED, OPEN, 50.0, 50.0)]
    assert sample("mercato_circuit_breaker_calls_total", breaker=name, outcome="slow_failure") == 5


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [(9.0, OPEN), (10.0, CLOSED)],
    ids=["inside-window", "past-window"],
)
async def test_time_window_forgets_outcomes_older_than_the_window(
    name: str, clock: ManualClock, downstream: Downstream, elapsed: float, expected: CircuitState
) -> None:
    breaker, _ = make_breaker(
        name,
        clock,
        sliding_window_type=SlidingWindowType.TIME,
        sliding_window_size=10,
        minimum_number_of_calls=5,
    )
    await fail_times(breaker, downstream, 4)
    assert breaker.state is CLOSED

    clock.advance(elapsed)
    await fail_times(breaker, downstream, 1)

    # Inside the window 5 of 5 calls failed; past it, 1 call is below the minimum.
    assert breaker.state is expected


async def test_ignored_exceptions_count_as_neither_success_nor_failure(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, events = make_breaker(
        name, clock, is_failure=lambda exc: not isinstance(exc, Harmless)
    )

    for _ in range(20):
        with pytest.raises(Harmless):
            await breaker.call(downstream.fail, exc=Harmless)
    assert breaker.state is CLOSED
    assert sample("mercato_circuit_breaker_calls_total", breaker=name, outcome="ignored") == 20

    await fail_times(breaker, downstream, 9)
    assert breaker.state is CLOSED  # still 9 recorded calls, below the minimum of 10
    await succeed_times(breaker, downstream, 1)
    assert breaker.state is OPEN
    assert events == [CircuitStateTransition(name, CLOSED, OPEN, 90.0, 0.0)]


async def test_an_ignored_probe_gives_its_permission_back(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, _ = make_breaker(
        name,
        clock,
        permitted_number_of_calls_in_half_open_state=1,
        is_failure=lambda exc: not isinstance(exc, Harmless),
    )
    await open_breaker(breaker, downstream)
    clock.advance(30.0)

    for _ in range(3):
        with pytest.raises(Harmless):
            await breaker.call(downstream.fail, exc=Harmless)
        assert breaker.state is HALF_OPEN

    await succeed_times(breaker, downstream, 1)
    assert breaker.state is CLOSED


async def test_a_cancelled_probe_gives_its_permission_back(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, _ = make_breaker(name, clock, permitted_number_of_calls_in_half_open_state=1)
    await open_breaker(breaker, downstream)
    clock.advance(30.0)
    hang = asyncio.Event()
    stuck = asyncio.create_task(breaker.call(hang.wait))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await breaker.call(downstream.ok)

    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck

    await succeed_times(breaker, downstream, 1)
    assert breaker.state is CLOSED


async def test_fewer_calls_than_the_minimum_never_open(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, events = make_breaker(
        name,
        clock,
        sliding_window_type=SlidingWindowType.TIME,
        sliding_window_size=60,
        minimum_number_of_calls=20,
    )

    await fail_times(breaker, downstream, 19)

    assert breaker.state is CLOSED
    assert breaker.failure_rate is None
    assert events == []


async def test_a_count_window_minimum_is_capped_at_the_window_size(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, _ = make_breaker(name, clock, minimum_number_of_calls=100)

    await fail_times(breaker, downstream, 10)

    assert breaker.state is OPEN


async def test_count_window_holds_only_the_last_n_calls(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, _ = make_breaker(name, clock)
    await fail_times(breaker, downstream, 4)
    await succeed_times(breaker, downstream, 6)
    assert breaker.failure_rate == 40.0

    await succeed_times(breaker, downstream, 4)  # pushes the four failures out

    assert breaker.failure_rate == 0.0


async def test_low_level_api_records_a_failure_without_an_exception(
    name: str, clock: ManualClock
) -> None:
    breaker, _ = make_breaker(name, clock)

    for _ in range(10):
        breaker.acquire_permission()
        breaker.on_error(0.1)  # e.g. an HTTP 503 response

    assert breaker.state is OPEN
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire_permission()
    assert caught.value.remaining_wait == 30.0


async def test_half_open_gives_up_after_its_max_wait(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, events = make_breaker(
        name,
        clock,
        permitted_number_of_calls_in_half_open_state=1,
        max_wait_duration_in_half_open_state=5.0,
    )
    await open_breaker(breaker, downstream)
    clock.advance(30.0)
    breaker.acquire_permission()  # a probe that never reports back
    assert breaker.state is HALF_OPEN

    clock.advance(5.0)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(downstream.ok)

    assert breaker.state is OPEN
    assert caught.value.remaining_wait == 30.0
    assert [e.to_state for e in events] == [OPEN, HALF_OPEN, OPEN]


async def test_force_open_rejects_until_reset(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, _ = make_breaker(name, clock)
    await fail_times(breaker, downstream, 4)

    breaker.force_open()
    clock.advance(1000.0)
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(downstream.ok)
    assert caught.value.remaining_wait == math.inf
    assert sample("mercato_circuit_breaker_state", breaker=name) == 3

    breaker.reset()
    assert breaker.state is CLOSED
    assert sample("mercato_circuit_breaker_state", breaker=name) == 0
    await fail_times(breaker, downstream, 9)  # the 4 failures before were forgotten
    assert breaker.state is CLOSED


async def test_a_failing_listener_does_not_break_calls(
    name: str, clock: ManualClock, downstream: Downstream
) -> None:
    breaker, events = make_breaker(name, clock)

    def broken(event: CircuitStateTransition) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(broken)
    with capture_logs() as logs:
        await open_breaker(breaker, downstream)

    assert len(events) == 1
    assert [log["event"] for log in logs] == [
        "circuit_breaker_state_changed",
        "circuit_breaker_listener_failed",
    ]


def test_registry_returns_one_breaker_per_name(name: str, clock: ManualClock) -> None:
    registry = CircuitBreakerRegistry(CONFIG, clock=clock)
    custom = dataclasses.replace(CONFIG, sliding_window_size=5)

    first = registry.get(f"{name}/a")
    assert registry.get(f"{name}/a") is first
    assert first.config is CONFIG
    other = registry.get(f"{name}/b", config=custom)
    assert other is not first
    assert other.config is custom
    assert registry.get(f"{name}/b", config=CONFIG) is other
    assert list(registry) == [first, other]


@pytest.mark.parametrize(
    "overrides",
    [
        {"sliding_window_size": 0},
        {"minimum_number_of_calls": 0},
        {"permitted_number_of_calls_in_half_open_state": 0},
        {"failure_rate_threshold": 0.0},
        {"slow_call_rate_threshold": 101.0},
        {"slow_call_duration_threshold": 0.0},
        {"wait_duration_in_open_state": -1.0},
        {"max_wait_duration_in_half_open_state": 0.0},
    ],
)
def test_config_refuses_nonsense(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(overrides))):
        dataclasses.replace(CONFIG, **overrides)


def test_config_is_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        CircuitBreakerConfig(SlidingWindowType.COUNT)  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CONFIG.sliding_window_size = 3  # type: ignore[misc]
