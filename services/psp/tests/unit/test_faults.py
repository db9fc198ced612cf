"""The fault dice, on a manual clock: latency, errors before acting, answers held back."""

import random

from chassis.resilience import ManualClock
from psp.domain.faults import FaultInjector, FaultKnobs


def injector(knobs: FaultKnobs, clock: ManualClock) -> FaultInjector:
    return FaultInjector(knobs, rng=random.Random(7), sleep=clock.sleep, clock=clock)


async def test_no_knobs_no_faults() -> None:
    clock = ManualClock()
    faults = injector(FaultKnobs(), clock)
    assert [await faults.before_call() for _ in range(100)] == [None] * 100
    assert not any(faults.should_hold_answer() for _ in range(100))
    assert clock.monotonic() == 0


async def test_latency_is_added_to_every_call() -> None:
    clock = ManualClock()
    faults = injector(FaultKnobs(latency_ms=250), clock)
    await faults.before_call()
    await faults.before_call()
    assert clock.monotonic() == 0.5


async def test_the_error_rate_gives_500s_and_503s_at_about_that_rate() -> None:
    faults = injector(FaultKnobs(error_rate=0.3), ManualClock())
    outcomes = [await faults.before_call() for _ in range(2000)]
    errors = [o for o in outcomes if o is not None]
    assert 450 < len(errors) < 750
    assert set(errors) == {500, 503}
    always = injector(FaultKnobs(error_rate=1.0), ManualClock())
    assert None not in [await always.before_call() for _ in range(50)]


async def test_a_held_answer_waits_its_time_or_until_the_caller_hangs_up() -> None:
    clock = ManualClock()
    faults = injector(FaultKnobs(timeout_after_charge_rate=1.0, timeout_seconds=3.0), clock)
    assert faults.should_hold_answer()

    async def never() -> bool:
        return False

    await faults.hold_answer(never)
    assert abs(clock.monotonic() - 3.0) < 1e-9

    started = clock.monotonic()

    async def after_a_second() -> bool:
        return clock.monotonic() - started >= 1.0

    await faults.hold_answer(after_a_second)
    assert abs(clock.monotonic() - started - 1.0) < 0.06
