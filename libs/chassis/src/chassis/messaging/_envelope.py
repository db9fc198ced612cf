"""The envelope every message travels in (CloudEvents attribute names where they fit)."""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from chassis.messaging.errors import MalformedMessageError

__all__ = ["Envelope", "MessageType"]

_TYPE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+)\.v(?P<major>[1-9][0-9]*)$")


@dataclass(frozen=True)
class MessageType:
    """`catalog.product.created.v1` → name `catalog.product.created`, major version 1."""

    name: str
    major: int

    @classmethod
    def parse(cls, value: str) -> MessageType:
        return _parse_type(value)

    @property
    def domain(self) -> str:
        """The first segment: the producing domain (stream/exchange partition)."""
        return self.name.split(".", 1)[0]

    def __str__(self) -> str:
        return f"{self.name}.v{self.major}"


@functools.lru_cache(maxsize=4096)
def _parse_type(value: str) -> MessageType:
    # A service uses a few dozen types, each parsed on every publish and delivery: cache.
    match = _TYPE.match(value)
    if match is None:
        raise MalformedMessageError(
            f"message type {value!r} is not like 'domain.entity.happened.v1'"
        )
    return MessageType(match["name"], int(match["major"]))


@dataclass(frozen=True)
class Envelope:
    """One event or command. `id` is unique and stays the same across redeliveries.

    `subject` is the aggregate the message is about (an order id, a sku); ordering is kept
    per subject. `correlation_id` ties every message of one business flow together (e.g. a
    checkout); `causation_id` is the id of the message that caused this one.
    """

    type: str
    source: str
    subject: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    specversion: str = "1.0"
    # The bytes it was read from, sent as they are (a relay republishes stored rows).
    _raw: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        MessageType.parse(self.type)
        if self.time.tzinfo is None:
            raise MalformedMessageError("envelope time must be timezone-aware UTC")
        if not self.subject:
            raise MalformedMessageError("envelope subject must not be empty")

    @property
    def message_type(self) -> MessageType:
        return MessageType.parse(self.type)

    def caused(self, type: str, source: str, subject: str, data: dict[str, Any]) -> Envelope:
        """A new message caused by this one: same correlation and trace, causation = self.id."""
        return Envelope(
            type=type,
            source=source,
            subject=subject,
            data=data,
            correlation_id=self.correlation_id or self.id,
            causation_id=self.id,
            traceparent=self.traceparent,
        )

    def with_trace(self, traceparent: str | None) -> Envelope:
        return replace(self, traceparent=traceparent)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": self.data,
        }
        if self.correlation_id:
            body["correlationid"] = self.correlation_id
        if self.causation_id:
            body["causationid"] = self.causation_id
        if self.traceparent:
            body["traceparent"] = self.traceparent
        return body

    def to_bytes(self) -> bytes:
        return self._raw if self._raw is not None else orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, body: Any) -> Envelope:
        if not isinstance(body, dict):
            raise MalformedMessageError("envelope is not a JSON object")
        try:
            when = datetime.fromisoformat(str(body["time"]).replace("Z", "+00:00"))
            data = body["data"]
            if not isinstance(data, dict):
                raise MalformedMessageError("envelope data is not a JSON object")
            return cls(
                id=str(body["id"]),
                type=str(body["type"]),
                source=str(body["source"]),
                subject=str(body["subject"]),
                time=when,
                data=data,
                correlation_id=body.get("correlationid"),
                causation_id=body.get("causationid"),
                traceparent=body.get("traceparent"),
                specversion=str(body.get("specversion", "1.0")),
            )
        except (KeyError, ValueError, TypeError) as error:
            raise MalformedMessageError(f"envelope is malformed: {error}") from None

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise MalformedMessageError("envelope is not valid JSON") from None
        envelope = cls.from_dict(body)
        object.__setattr__(envelope, "_raw", bytes(raw))
        return envelope
