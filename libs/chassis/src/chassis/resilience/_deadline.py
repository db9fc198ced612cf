"""Deadlines: how long the original caller is still willing to wait.

A deadline is an absolute point on this process's monotonic clock. Between processes it
travels as the time *remaining*, in whole milliseconds in `X-Mercato-Deadline-Ms`,
because monotonic clocks of different processes share no origin. Inside a process it
travels in the `current_deadline` context variable, so the HTTP client can cap every
timeout with `timeout_for` without each layer passing it along.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from chassis.resilience._clock import SYSTEM_CLOCK, Clock
from chassis.resilience.errors import DeadlineExceededError

__all__ = [
    "DEADLINE_HEADER",
    "Deadline",
    "current_deadline",
    "deadline_scope",
    "timeout_for",
]

DEADLINE_HEADER = "X-Mercato-Deadline-Ms"

# Longer digit strings are clamped without being parsed: no one waits 10**15 ms.
_MAX_DIGITS = 15
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Deadline:
    """The monotonic time `expires_at` (per `clock`) after which nobody awaits the result."""

    expires_at: float
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float, *, clock: Clock = SYSTEM_CLOCK) -> Deadline:
        """The deadline `seconds` from now."""
        return cls(clock.monotonic() + seconds, clock)

    @classmethod
    def from_header(
        cls, value: str, *, clock: Clock = SYSTEM_CLOCK, max_seconds: float = 60.0
    ) -> Deadline:
        """Parse an `X-Mercato-Deadline-Ms` value, clamping it to `max_seconds`.

        Raises `ValueError` for anything but a non-negative integer, so the edge can
        answer 400 instead of guessing.
        """
        text = value.strip()
        if text.startswith("-") and _DIGITS.fullmatch(text[1:]):
            raise ValueError(f"{DEADLINE_HEADER} must not be negative, got {value!r}")
        if not _DIGITS.fullmatch(text):
            raise ValueError(
                f"{DEADLINE_HEADER} must be an integer number of milliseconds, got {value!r}"
            )
        # The sender is trusted with how long its caller waits, not with how long we work.
        seconds = max_seconds if len(text) > _MAX_DIGITS else min(int(text) / 1000, max_seconds)
        return cls.after(seconds, clock=clock)

    def remaining(self) -> float:
        """Seconds left, never below 0.0."""
        return max(self.expires_at - self.clock.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def raise_if_expired(self) -> None:
        """Raise `DeadlineExceededError` if no time is left."""
        if self.expired:
            raise DeadlineExceededError()

    def to_header(self) -> str:
        """The remaining time as an `X-Mercato-Deadline-Ms` value.

        Rounds down, so the callee never believes it has more time than the caller, and
        raises `DeadlineExceededError` instead of sending a request that is already late.
        """
        millis = math.floor(self.remaining() * 1000)
        if millis <= 0:
            raise DeadlineExceededError("deadline passed before the request was sent")
        return str(millis)


current_deadline: ContextVar[Deadline | None] = ContextVar("current_deadline", default=None)
"""The deadline of the work the current task does, if any; set it with `deadline_scope`."""


@contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[Deadline]:
    """Run the block under `deadline`, or under the enclosing one if that is earlier.

    Yields the deadline in effect: an inner scope can shorten the time left, never extend it.
    """
    outer = current_deadline.get()
    effective = deadline
    if outer is not None and outer.remaining() <= deadline.remaining():
        effective = outer
    token = current_deadline.set(effective)
    try:
        yield effective
    finally:
        current_deadline.reset(token)


def timeout_for(default: float) -> float:
    """`default` seconds, shortened to what is left of the current deadline.

    Raises `DeadlineExceededError` if the current deadline has passed.
    """
    deadline = current_deadline.get()
    if deadline is None:
        return default
    deadline.raise_if_expired()
    return min(default, deadline.remaining())
