"""What every bus adapter does alike: type patterns, many publishes in flight, the verdict
on a delivery, dead letters.

The adapters differ in how they ack, delay and store; this module decides *what* happens,
so the three brokers behave the same:

- A body that is not an envelope, a `MalformedMessageError` or a `PermanentError` from
  the handler: dead-lettered at once.
- Any other exception (`TransientError` or unexpected): retried after
  `retry.backoff[attempt - 1]` (the last value repeats), dead-lettered on `max_attempts`.
- A delivery whose attempt is already past `max_attempts` (the consumer died or was stopped
  mid-handling that many times) is dead-lettered without calling the handler again, so a
  message that crashes its consumer cannot crash it forever.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from chassis.messaging._bus import DeadLetter, Delivery, Handler, RetryPolicy
from chassis.messaging._envelope import Envelope
from chassis.messaging._metrics import (
    DEAD_LETTERS,
    HANDLING_DURATION,
    MESSAGES_CONSUMED,
)
from chassis.messaging.errors import BrokerUnavailableError, MalformedMessageError, PermanentError
from chassis.tracing import context_from_traceparent, tracer

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "RESERVED_CONSUMERS",
    "RESERVED_DOMAINS",
    "UNKNOWN_TYPE",
    "Outcome",
    "Verdict",
    "check_consumer",
    "check_publishable",
    "dead_letter_from_headers",
    "dead_letter_headers",
    "judge",
    "new_dead_letter",
    "normalize_patterns",
    "pattern_matches",
    "read_envelope",
    "record_dead_letter",
]

log = structlog.get_logger("chassis.messaging")

# Broker subjects/queues already use these as their second token (`mercato.replay.…`).
RESERVED_DOMAINS: Final = frozenset({"replay", "deadletter"})
RESERVED_CONSUMERS: Final = frozenset({"deadletters"})  # queue `mercato.deadletters`
UNKNOWN_TYPE: Final = "unknown"  # the `type` label of a body that is not an envelope
_MAX_REASON = 2000

_CONSUMER = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_LITERAL = re.compile(r"^[a-z0-9_]+$")


def check_consumer(consumer: str) -> str:
    """A consumer name is one broker token: letters, digits, `_` and `-`."""
    if not _CONSUMER.match(consumer):
        raise ValueError(
            f"consumer name {consumer!r} must be 1-100 letters, digits, '_' or '-' "
            "(it names a durable consumer, a queue and a subject token)"
        )
    if consumer in RESERVED_CONSUMERS:
        raise ValueError(f"consumer name {consumer!r} is reserved by the bus")
    return consumer


def check_publishable(envelope: Envelope) -> None:
    if envelope.message_type.domain in RESERVED_DOMAINS:
        raise ValueError(f"domain {envelope.message_type.domain!r} is reserved by the bus")


# -- type patterns ---------------------------------------------------------------------


async def publish_concurrently(
    envelopes: Sequence[Envelope],
    publish: Callable[[Envelope], Awaitable[None]],
    *,
    max_in_flight: int,
    unavailable: BrokerUnavailableError | None = None,
) -> list[BaseException | None]:
    """`publish_many` for every adapter: up to `max_in_flight` awaiting their acks at once,
    started in the given order, one outcome per envelope.

    Once the broker proves unavailable (or is known to be, via `unavailable`), the envelopes
    not yet sent fail at once with that error instead of each waiting out the timeout.
    """
    outcomes: list[BaseException | None] = [None] * len(envelopes)
    next_index = 0

    # Workers taking the next envelope in turn, rather than a task per envelope behind a
    # semaphore: 3.11's semaphore wakes a waiter by scanning all of them, which made a
    # wave of thousands quadratic.
    async def worker() -> None:
        nonlocal unavailable, next_index
        while next_index < len(envelopes):
            index, next_index = next_index, next_index + 1
            envelope = envelopes[index]
            try:
                check_publishable(envelope)
                if unavailable is not None:
                    outcomes[index] = unavailable
                    continue
                await publish(envelope)
            except BrokerUnavailableError as error:
                unavailable = unavailable or error
                outcomes[index] = error
            except Exception as error:
                outcomes[index] = error

    await asyncio.gather(*(worker() for _ in range(min(max_in_flight, len(envelopes)))))
    return outcomes


def _check_pattern(pattern: str) -> tuple[str, ...]:
    segments = tuple(pattern.split("."))
    problem = None
    if len(segments) < 2:
        problem = "needs at least a domain and one more segment"
    elif not _LITERAL.match(segments[0]):
        problem = "must start with a literal domain (streams are per domain)"
    elif segments[0] in RESERVED_DOMAINS:
        problem = f"uses the reserved domain {segments[0]!r}"
    elif any(s == ">" for s in segments[:-1]):
        problem = "may have '>' only as its last segment"
    elif not all(s in ("*", ">") or _LITERAL.match(s) for s in segments):
        problem = "has a segment that is not lower-case letters, digits, '_', '*' or '>'"
    if problem is not None:
        raise ValueError(f"message type pattern {pattern!r} {problem}")
    return segments


def _covers(wide: tuple[str, ...], narrow: tuple[str, ...]) -> bool:
    """Whether every type `narrow` matches is matched by `wide` too."""
    for index, segment in enumerate(wide):
        if segment == ">":
            return len(narrow) > index
        if index >= len(narrow) or narrow[index] == ">":
            return False
        if segment != "*" and segment != narrow[index]:
            return False
    return len(wide) == len(narrow)


def normalize_patterns(types: Sequence[str]) -> tuple[str, ...]:
    """Validated patterns without duplicates or patterns another one already covers.

    Brokers reject overlapping filters (NATS) or would match a message twice; the result is
    sorted so that the same set of patterns always gives the same broker configuration.
    """
    if isinstance(types, str):
        raise TypeError("types must be a sequence of patterns, not one string")
    parsed = {_check_pattern(pattern) for pattern in types}
    if not parsed:
        raise ValueError("subscribe needs at least one message type or pattern")
    kept = [
        pattern
        for pattern in parsed
        if not any(other != pattern and _covers(other, pattern) for other in parsed)
    ]
    return tuple(sorted(".".join(pattern) for pattern in kept))


def pattern_matches(pattern: str, type_: str) -> bool:
    """NATS-style matching: `*` is one segment, a trailing `>` one or more."""
    return _covers(tuple(pattern.split(".")), tuple(type_.split(".")))


# -- the verdict on one delivery ---------------------------------------------------------


class Outcome(StrEnum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str = ""
    delay: float = 0.0  # seconds before the next attempt, for RETRY


def read_envelope(raw: bytes) -> Envelope | MalformedMessageError:
    try:
        return Envelope.from_bytes(raw)
    except MalformedMessageError as error:
        return error


def _reason(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _backoff(retry: RetryPolicy, attempt: int) -> float:
    if not retry.backoff:
        return 0.0
    return float(retry.backoff[min(attempt, len(retry.backoff)) - 1])


async def judge(
    parsed: Envelope | MalformedMessageError,
    delivery: Delivery,
    handler: Handler,
    retry: RetryPolicy,
) -> Verdict:
    """Run the handler on one delivery and say what to do with the message.

    Records `mercato_messages_consumed_total` and the handling duration, and logs retries.
    A cancelled handler (the subscription stops) propagates `CancelledError`: the adapter
    leaves the message unacked, so the broker delivers it again.
    """
    consumer = delivery.consumer
    if isinstance(parsed, MalformedMessageError):
        unreadable = Verdict(Outcome.DEAD_LETTER, _reason(parsed))
        MESSAGES_CONSUMED.labels(consumer, UNKNOWN_TYPE, unreadable.outcome).inc()
        return unreadable
    if delivery.attempt > retry.max_attempts:
        exhausted = Verdict(
            Outcome.DEAD_LETTER,
            f"AttemptsExhausted: delivered {delivery.attempt} times without an outcome "
            "(the consumer crashed, timed out or stopped while handling it)",
        )
        MESSAGES_CONSUMED.labels(consumer, parsed.type, exhausted.outcome).inc()
        return exhausted

    started = time.perf_counter()
    span = tracer().start_span(
        f"consume {parsed.type}",
        context=context_from_traceparent(parsed.traceparent),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.operation.type": "process",
            "messaging.destination.name": parsed.type,
            "messaging.consumer.group.name": consumer,
            "messaging.message.id": parsed.id,
            "messaging.message.conversation_id": parsed.correlation_id or parsed.id,
            "mercato.delivery.attempt": delivery.attempt,
        },
    )
    attached = otel_context.attach(trace.set_span_in_context(span))
    verdict: Verdict | None = None  # stays None when the handler is cancelled
    try:
        await handler(parsed, delivery)
    except (MalformedMessageError, PermanentError) as error:
        verdict = Verdict(Outcome.DEAD_LETTER, _reason(error))
    except Exception as error:
        if delivery.attempt >= retry.max_attempts:
            verdict = Verdict(Outcome.DEAD_LETTER, _reason(error))
        else:
            verdict = Verdict(Outcome.RETRY, _reason(error), _backoff(retry, delivery.attempt))
            log.warning(
                "message handling failed, will retry",
                consumer=consumer,
                type=parsed.type,
                envelope_id=parsed.id,
                attempt=delivery.attempt,
                max_attempts=retry.max_attempts,
                retry_in=verdict.delay,
                reason=verdict.reason,
            )
    else:
        verdict = Verdict(Outcome.ACK)
    finally:
        HANDLING_DURATION.labels(consumer).observe(time.perf_counter() - started)
        otel_context.detach(attached)
        _end_span(span, verdict)
    MESSAGES_CONSUMED.labels(consumer, parsed.type, verdict.outcome).inc()
    return verdict


def _end_span(span: trace.Span, verdict: Verdict | None) -> None:
    if verdict is not None:
        span.set_attribute("mercato.outcome", verdict.outcome.value)
        if verdict.outcome is not Outcome.ACK:
            span.set_status(Status(StatusCode.ERROR, verdict.reason))
    span.end()


# -- dead letters ----------------------------------------------------------------------

# Header names shared by the NATS and RabbitMQ stores; the body is the original bytes.
H_ID: Final = "Mercato-Dead-Letter-Id"
H_CONSUMER: Final = "Mercato-Consumer"
H_REASON: Final = "Mercato-Reason"
H_ATTEMPTS: Final = "Mercato-Attempts"
H_DEAD_AT: Final = "Mercato-Dead-At"
H_TYPE: Final = "Mercato-Type"

# Header values stay printable ASCII on one line (NATS headers are MIME-like); anything else
# is %-escaped, so an ordinary reason stays readable in broker tools.
_SAFE = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) != "%")


def new_dead_letter(
    *,
    consumer: str,
    verdict: Verdict,
    attempts: int,
    raw: bytes,
    parsed: Envelope | MalformedMessageError,
    letter_id: str | None = None,
) -> DeadLetter:
    return DeadLetter(
        id=letter_id or uuid.uuid4().hex,
        consumer=consumer,
        reason=verdict.reason,
        attempts=attempts,
        envelope=parsed if isinstance(parsed, Envelope) else None,
        raw=raw,
        dead_at=datetime.now(UTC),
    )


def dead_letter_headers(letter: DeadLetter) -> dict[str, str]:
    return {
        H_ID: letter.id,
        H_CONSUMER: letter.consumer,
        H_REASON: quote(letter.reason, safe=_SAFE),
        H_ATTEMPTS: str(letter.attempts),
        H_DEAD_AT: letter.dead_at.isoformat(),
        H_TYPE: letter.envelope.type if letter.envelope is not None else UNKNOWN_TYPE,
    }


def dead_letter_from_headers(headers: Mapping[str, object], raw: bytes) -> DeadLetter:
    def text(name: str) -> str:
        return str(headers.get(name, ""))

    parsed = read_envelope(raw)
    try:
        dead_at = datetime.fromisoformat(text(H_DEAD_AT))
    except ValueError:
        dead_at = datetime.fromtimestamp(0, UTC)
    attempts = text(H_ATTEMPTS)
    return DeadLetter(
        id=text(H_ID),
        consumer=text(H_CONSUMER),
        reason=unquote(text(H_REASON)),
        attempts=int(attempts) if attempts.isdigit() else 0,
        envelope=parsed if isinstance(parsed, Envelope) else None,
        raw=raw,
        dead_at=dead_at,
    )


def record_dead_letter(letter: DeadLetter) -> None:
    """Count and log a letter once it is stored."""
    DEAD_LETTERS.labels(letter.consumer).inc()
    log.warning(
        "message dead-lettered",
        consumer=letter.consumer,
        dead_letter_id=letter.id,
        type=letter.envelope.type if letter.envelope is not None else UNKNOWN_TYPE,
        envelope_id=letter.envelope.id if letter.envelope is not None else None,
        attempts=letter.attempts,
        reason=letter.reason,
    )
