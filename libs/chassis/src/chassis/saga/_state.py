"""A saga instance as stored: where it is, what it knows, and what happened to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = ["HistoryEntry", "SagaFailure", "SagaInstance", "SagaStatus"]


class SagaStatus(StrEnum):
    RUNNING = "RUNNING"  # going forward, waiting on `step`
    COMPENSATING = "COMPENSATING"  # undoing, waiting on `step`'s compensation
    COMPLETED = "COMPLETED"  # every step succeeded
    COMPENSATED = "COMPENSATED"  # failed before the pivot; completed steps undone

    @property
    def finished(self) -> bool:
        return self in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED)


UNFINISHED = (SagaStatus.RUNNING, SagaStatus.COMPENSATING)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a saga's timeline.

    `event` is one of: started, command_sent, succeeded, failed, timed_out, reissued,
    compensating, compensation_sent, compensated, ignored, completed. `step` is None for
    events of the saga as a whole.
    """

    step: str | None
    event: str
    at: datetime
    message_type: str | None = None
    message_id: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "step": self.step,
            "event": self.event,
            "message_type": self.message_type,
            "at": _iso(self.at),
        }
        if self.message_id is not None:
            item["message_id"] = self.message_id
        if self.reason is not None:
            item["reason"] = self.reason
        return item

    @classmethod
    def from_dict(cls, item: Mapping[str, Any]) -> HistoryEntry:
        return cls(
            step=item.get("step"),
            event=str(item["event"]),
            at=datetime.fromisoformat(str(item["at"]).replace("Z", "+00:00")),
            message_type=item.get("message_type"),
            message_id=item.get("message_id"),
            reason=item.get("reason"),
        )


@dataclass(frozen=True)
class SagaFailure:
    """Why a saga compensated: the step that failed, the reason, the reply that said so."""

    step: str
    reason: str
    message_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "reason": self.reason, "message_type": self.message_type}

    @classmethod
    def from_dict(cls, item: Mapping[str, Any]) -> SagaFailure:
        return cls(str(item["step"]), str(item["reason"]), item.get("message_type"))


@dataclass(frozen=True)
class SagaInstance:
    """A saga as last stored. `step` is the step it waits on (None once finished);
    `attempts` counts how often that step's command has been sent; `deadline` is when the
    wait ends (a timeout); `version` guards against concurrent updates."""

    id: str
    saga_type: str
    correlation_id: str
    status: SagaStatus
    step: str | None
    attempts: int
    data: Mapping[str, Any]
    history: tuple[HistoryEntry, ...]
    failure: SagaFailure | None
    deadline: datetime | None
    step_started_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    version: int

    def to_dict(self, *, redact: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Plain data for APIs and consoles; `redact` names data keys to hide."""

        def when(moment: datetime | None) -> str | None:
            return _iso(moment) if moment is not None else None

        return {
            "id": self.id,
            "saga_type": self.saga_type,
            "correlation_id": self.correlation_id,
            "status": str(self.status),
            "step": self.step,
            "attempts": self.attempts,
            "data": {k: "[redacted]" if k in redact else v for k, v in self.data.items()},
            "failure": self.failure.to_dict() if self.failure else None,
            "deadline": when(self.deadline),
            "step_started_at": when(self.step_started_at),
            "created_at": when(self.created_at),
            "updated_at": when(self.updated_at),
            "finished_at": when(self.finished_at),
            "version": self.version,
            "history": [entry.to_dict() for entry in self.history],
        }
