"""What a saga is: an ordered list of steps (Richardson's compensatable, pivot, retriable)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from chassis.messaging import Envelope, MessageType
from chassis.messaging.errors import MalformedMessageError
from chassis.saga.errors import SagaDefinitionError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from chassis.saga._state import SagaInstance

__all__ = [
    "Command",
    "Compensation",
    "Failure",
    "Guard",
    "Hook",
    "LocalAction",
    "SagaDefinition",
    "Step",
    "StepKind",
]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")


class StepKind(StrEnum):
    """Where a step stands relative to the point of no return.

    Compensatable steps come first and are undone, in reverse, when a later step before the
    pivot fails. The pivot is the go/no-go step. Retriable steps follow it and are retried
    until they succeed: after the pivot the saga only goes forward.
    """

    COMPENSATABLE = "compensatable"
    PIVOT = "pivot"
    RETRIABLE = "retriable"


@dataclass(frozen=True)
class Failure:
    """A local action's or guard's "no": `reason` ends up in the saga's failure and history."""

    reason: str


LocalAction = Callable[["AsyncSession", "SagaInstance"], Awaitable[Failure | None]]
"""A step run in the orchestrator's own transaction: None for success, or a `Failure`.

An exception rolls the whole transaction back (the reply that led here is redelivered)."""

Hook = Callable[["AsyncSession", "SagaInstance"], Awaitable[None]]
"""Runs in the transaction that finishes a saga (e.g. marks the order rejected)."""

Guard = Callable[["AsyncSession", "SagaInstance"], Awaitable[Failure | None]]
"""Asked before each step up to the pivot; a `Failure` stops the saga and compensates."""

Builder = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Command:
    """A step's action performed by another service: a command and its replies.

    `build` makes the command's data from the saga data. `keep` names fields of the success
    reply to store in the saga data (e.g. a payment id); `forget` names saga data keys to drop
    once the step succeeded (e.g. a payment token nobody needs any more).
    """

    type: str
    build: Builder
    success: str
    failure: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    forget: tuple[str, ...] = ()


@dataclass(frozen=True)
class Compensation:
    """The command that undoes a compensatable step, and the reply that says it is undone."""

    type: str
    build: Builder
    reply: str


@dataclass(frozen=True)
class Step:
    """One step. `timeout` is how long to wait for a reply; re-issued commands (retriable
    steps, compensations) wait twice as long each time, up to `max_timeout`."""

    name: str
    kind: StepKind
    action: Command | LocalAction
    compensation: Compensation | LocalAction | None = None
    timeout: float = 30.0
    max_timeout: float = 300.0

    def wait(self, attempt: int) -> float:
        """Seconds to wait for attempt `attempt` (1-based) before re-issuing or giving up."""
        return float(min(self.timeout * 2 ** max(attempt - 1, 0), self.max_timeout))


def _default_correlate(envelope: Envelope) -> str:
    return envelope.subject


@dataclass(frozen=True)
class SagaDefinition:
    """A saga type: its steps in order and what happens when it finishes.

    Commands go to `subject` = the saga's correlation id (e.g. the order id), and replies are
    matched to a saga by `correlate(reply)`, the reply's subject unless told otherwise.
    """

    name: str
    steps: Sequence[Step]
    on_completed: Hook | None = None
    on_compensated: Hook | None = None
    before_step: Guard | None = None
    correlate: Callable[[Envelope], str] = _default_correlate
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        _validate(self)
        object.__setattr__(self, "_index", {step.name: n for n, step in enumerate(self.steps)})

    def index(self, step_name: str) -> int:
        try:
            return self._index[step_name]
        except KeyError:
            raise SagaDefinitionError(f"saga {self.name!r} has no step {step_name!r}") from None

    @property
    def reply_types(self) -> tuple[str, ...]:
        """Every message type this saga waits for, in step order, once each."""
        types: list[str] = []
        for step in self.steps:
            if isinstance(step.action, Command):
                types += [step.action.success, *step.action.failure]
            if isinstance(step.compensation, Compensation):
                types.append(step.compensation.reply)
        return tuple(dict.fromkeys(types))

    def describe(self) -> list[dict[str, Any]]:
        """The plan as plain data, for consoles: each step's kind, command and replies."""
        plan = []
        for step in self.steps:
            item: dict[str, Any] = {"name": step.name, "kind": str(step.kind)}
            if isinstance(step.action, Command):
                item["command"] = step.action.type
                item["success"] = step.action.success
                item["failure"] = list(step.action.failure)
            else:
                item["local"] = True
            if isinstance(step.compensation, Compensation):
                item["compensation"] = step.compensation.type
                item["compensation_reply"] = step.compensation.reply
            elif step.compensation is not None:
                item["compensation"] = "local"
            item["timeout"] = step.timeout
            plan.append(item)
        return plan


def _check_type(saga: str, value: str) -> None:
    try:
        MessageType.parse(value)
    except MalformedMessageError as error:
        raise SagaDefinitionError(f"saga {saga!r}: {error}") from None


def _validate(definition: SagaDefinition) -> None:
    name = definition.name
    if not _NAME.match(name):
        raise SagaDefinitionError(f"saga name {name!r} must be 1-100 letters, digits, _ . -")
    if not definition.steps:
        raise SagaDefinitionError(f"saga {name!r} has no steps")
    seen: set[str] = set()
    order = {StepKind.COMPENSATABLE: 0, StepKind.PIVOT: 1, StepKind.RETRIABLE: 2}
    previous = StepKind.COMPENSATABLE
    for step in definition.steps:
        if not _NAME.match(step.name):
            raise SagaDefinitionError(f"saga {name!r}: bad step name {step.name!r}")
        if step.name in seen:
            raise SagaDefinitionError(f"saga {name!r}: step {step.name!r} appears twice")
        seen.add(step.name)
        if order[step.kind] < order[previous] or (
            step.kind is StepKind.PIVOT and previous is StepKind.PIVOT
        ):
            raise SagaDefinitionError(
                f"saga {name!r}: steps must be compensatable ones, then at most one pivot, "
                f"then retriable ones ({step.name!r} is {step.kind} after a {previous} step)"
            )
        previous = step.kind
        if step.compensation is not None and step.kind is not StepKind.COMPENSATABLE:
            raise SagaDefinitionError(
                f"saga {name!r}: only compensatable steps have compensations ({step.name!r})"
            )
        if not 0 < step.timeout <= step.max_timeout:
            raise SagaDefinitionError(
                f"saga {name!r}: step {step.name!r} needs 0 < timeout <= max_timeout"
            )
        if isinstance(step.action, Command):
            command = step.action
            for value in (command.type, command.success, *command.failure):
                _check_type(name, value)
            if command.success in command.failure:
                raise SagaDefinitionError(
                    f"saga {name!r}: step {step.name!r} has {command.success!r} as both "
                    "success and failure"
                )
        if isinstance(step.compensation, Compensation):
            _check_type(name, step.compensation.type)
            _check_type(name, step.compensation.reply)
