"""Deadlines travel as remaining milliseconds and only ever get earlier."""

from __future__ import annotations

import pytest

from chassis.resilience import (
    DEADLINE_HEADER,
    Deadline,
    DeadlineExceededError,
    ManualClock,
    current_deadline,
    deadline_scope,
    timeout_for,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1000.0)


def test_header_name() -> None:
    assert DEADLINE_HEADER == "X-Mercato-Deadline-Ms"


def test_remaining_time_round_trips_through_the_header(clock: ManualClock) -> None:
    deadline = Deadline.after(2.5, clock=clock)
    clock.advance(0.75)

    header = deadline.to_header()
    # A callee whose clock has a different origin still gets the same time left.
    callee_clock = ManualClock(start=5.0)
    received = Deadline.from_header(header, clock=callee_clock)

    assert header == "1750"
    assert received.remaining() == pytest.approx(1.75)
    assert received.expires_at == pytest.approx(6.75)


def test_the_header_rounds_down(clock: ManualClock) -> None:
    assert Deadline.after(0.0129, clock=clock).to_header() == "12"


def test_remaining_and_expired_follow_the_clock(clock: ManualClock) -> None:
    deadline = Deadline.after(1.0, clock=clock)
    assert deadline.remaining() == 1.0
    assert not deadline.expired

    clock.advance(1.0)
    assert deadline.remaining() == 0.0
    assert deadline.expired
    clock.advance(5.0)
    assert deadline.remaining() == 0.0


def test_an_expired_deadline_is_refused(clock: ManualClock) -> None:
    deadline = Deadline.after(1.0, clock=clock)
    clock.advance(1.0)

    with pytest.raises(DeadlineExceededError):
        deadline.to_header()
    with pytest.raises(DeadlineExceededError):
        deadline.raise_if_expired()
    with deadline_scope(deadline), pytest.raises(DeadlineExceededError):
        timeout_for(5.0)


def test_a_zero_header_is_an_expired_deadline(clock: ManualClock) -> None:
    assert Deadline.from_header("0", clock=clock).expired


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "integer"),
        ("abc", "integer"),
        ("1.5", "integer"),
        ("1e3", "integer"),
        ("+100", "integer"),
        ("1_000", "integer"),
        ("١٢٣", "integer"),  # Arabic-Indic digits, which int() would accept
        ("-5", "negative"),
    ],
)
def test_a_garbage_header_is_rejected(clock: ManualClock, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Deadline.from_header(value, clock=clock)


@pytest.mark.parametrize("value", ["120000", "9" * 14, "9" * 5000])
def test_an_absurd_header_is_clamped_to_the_maximum(clock: ManualClock, value: str) -> None:
    deadline = Deadline.from_header(value, clock=clock, max_seconds=30.0)

    assert deadline.remaining() == 30.0


def test_surrounding_whitespace_is_tolerated(clock: ManualClock) -> None:
    assert Deadline.from_header(" 250 ", clock=clock).remaining() == 0.25


def test_nested_deadlines_take_the_earlier(clock: ManualClock) -> None:
    outer = Deadline.after(5.0, clock=clock)
    later = Deadline.after(10.0, clock=clock)
    earlier = Deadline.after(2.0, clock=clock)

    with deadline_scope(outer) as effective:
        assert effective is outer
        with deadline_scope(later) as inner:
            assert inner is outer
            assert current_deadline.get() is outer
        with deadline_scope(earlier) as inner:
            assert inner is earlier
            assert timeout_for(3.0) == 2.0
        assert current_deadline.get() is outer
    assert current_deadline.get() is None


def test_timeout_for_never_exceeds_the_time_left(clock: ManualClock) -> None:
    assert timeout_for(3.0) == 3.0  # no deadline: the default

    with deadline_scope(Deadline.after(10.0, clock=clock)):
        assert timeout_for(3.0) == 3.0
        clock.advance(8.5)
        assert timeout_for(3.0) == 1.5
