"""A payment per order: its state, the psp operations it waits for, and its ledger.

A `Payment` moves through

    pending ──> authorized ──> captured ──> refunded
       │  ▲         └──> voided
       ▼  │
    pending_unknown          (an authorization call timed out: the psp may have charged)
       └──> declined

Work for the psp is queued as `Operation`s (authorize, void, capture, refund), at most
one of each kind per order, run strictly one after another in the order they were
requested. An operation is `requested`, `unknown` (a call's outcome is not known: it is
reconciled before anything is sent again), then `succeeded` or `failed` (the psp said
no). Every movement of money appends a `LedgerEntry`; entries are never changed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "NO_CURRENCY",
    "Cause",
    "LedgerEntry",
    "LedgerKind",
    "Operation",
    "OperationKind",
    "OperationStatus",
    "Payment",
    "PaymentStatus",
    "idempotency_key",
    "new_payment",
    "voided_placeholder",
]

NO_CURRENCY = "XXX"  # ISO 4217's "no currency": a payment known only from a void


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PENDING_UNKNOWN = "pending_unknown"
    AUTHORIZED = "authorized"
    DECLINED = "declined"
    VOIDED = "voided"
    CAPTURED = "captured"
    REFUNDED = "refunded"


class OperationKind(StrEnum):
    AUTHORIZE = "authorize"
    VOID = "void"
    CAPTURE = "capture"
    REFUND = "refund"


class OperationStatus(StrEnum):
    REQUESTED = "requested"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class LedgerKind(StrEnum):
    AUTHORIZATION = "authorization"
    VOID = "void"
    CAPTURE = "capture"
    REFUND = "refund"


_UNFINISHED = frozenset({OperationStatus.REQUESTED, OperationStatus.UNKNOWN})


def idempotency_key(order_id: str, kind: OperationKind) -> str:
    """The psp idempotency key of an operation: the same for every retry, so none charges twice."""
    return f"{order_id}:{kind.value}"


@dataclass(frozen=True)
class Cause:
    """The message that asked for something; the reply keeps its correlation and trace."""

    message_id: str
    correlation_id: str | None = None
    traceparent: str | None = None


@dataclass
class Operation:
    id: str
    order_id: str
    position: int  # order among the payment's operations
    kind: OperationKind
    status: OperationStatus
    idempotency_key: str
    attempts: int  # calls made that gave no answer
    next_attempt_at: datetime
    created_at: datetime
    cause: Cause | None = None
    amount: int | None = None  # the amount it moved, once done
    outcome: str | None = None  # why it failed (a decline code, a psp refusal)
    last_error: str | None = None
    completed_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status not in _UNFINISHED


@dataclass(frozen=True)
class LedgerEntry:
    order_id: str
    kind: LedgerKind
    amount: int
    currency: str
    psp_reference: str | None
    at: datetime


@dataclass
class Payment:
    id: str
    order_id: str
    user_id: str
    amount: int  # integer minor units
    currency: str
    status: PaymentStatus
    created_at: datetime
    updated_at: datetime
    payment_token: str | None = None  # kept only until the authorization is settled
    psp_authorization_id: str | None = None
    decline_reason: str | None = None
    authorized_amount: int = 0
    captured_amount: int = 0
    voided_amount: int = 0
    refunded_amount: int = 0
    operations: list[Operation] = field(default_factory=list)
    new_entries: list[LedgerEntry] = field(default_factory=list)  # appended, not yet stored

    # -- the queue of psp operations ---------------------------------------------------

    def operation(self, kind: OperationKind) -> Operation | None:
        return next((op for op in self.operations if op.kind is kind), None)

    def head(self) -> Operation | None:
        """The operation to run next: the oldest unfinished one."""
        return next((op for op in self.operations if not op.finished), None)

    @property
    def pending_operations(self) -> list[Operation]:
        return [op for op in self.operations if not op.finished]

    def request(self, kind: OperationKind, *, cause: Cause | None, now: datetime) -> Operation:
        """Queue `kind` behind what is queued already; again, if it failed before."""
        existing = self.operation(kind)
        if existing is not None:
            if existing.status is OperationStatus.FAILED:
                existing.status = OperationStatus.REQUESTED
                existing.attempts = 0
                existing.next_attempt_at = now
                existing.outcome = None
                existing.completed_at = None
                existing.cause = cause
                self.updated_at = now
            return existing
        op = Operation(
            id=str(uuid.uuid4()),
            order_id=self.order_id,
            position=len(self.operations),
            kind=kind,
            status=OperationStatus.REQUESTED,
            idempotency_key=idempotency_key(self.order_id, kind),
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            cause=cause,
        )
        self.operations.append(op)
        self.updated_at = now
        return op

    # -- outcomes of psp operations ----------------------------------------------------

    def authorization_succeeded(
        self, op: Operation, psp_reference: str | None, now: datetime
    ) -> None:
        self._finish(op, OperationStatus.SUCCEEDED, amount=self.amount, now=now)
        self.status = PaymentStatus.AUTHORIZED
        self.psp_authorization_id = psp_reference
        self.authorized_amount = self.amount
        self.payment_token = None
        self._enter(LedgerKind.AUTHORIZATION, self.amount, psp_reference, now)

    def authorization_declined(self, op: Operation, reason: str, now: datetime) -> None:
        self._finish(op, OperationStatus.FAILED, outcome=reason, now=now)
        self.status = PaymentStatus.DECLINED
        self.decline_reason = reason
        self.payment_token = None

    def void_succeeded(self, op: Operation, now: datetime) -> None:
        """The hold is released (or there was none: declined, or nothing to hold)."""
        released = self.authorized_amount if self.status is PaymentStatus.AUTHORIZED else 0
        self._finish(op, OperationStatus.SUCCEEDED, amount=released, now=now)
        if self.status is PaymentStatus.AUTHORIZED:
            self.status = PaymentStatus.VOIDED
            self.voided_amount = released
            self._enter(LedgerKind.VOID, released, self.psp_authorization_id, now)

    def capture_succeeded(self, op: Operation, amount: int, now: datetime) -> None:
        self._finish(op, OperationStatus.SUCCEEDED, amount=amount, now=now)
        if self.status is PaymentStatus.AUTHORIZED:
            self.status = PaymentStatus.CAPTURED
            self.captured_amount = amount
            self._enter(LedgerKind.CAPTURE, amount, self.psp_authorization_id, now)

    def refund_succeeded(self, op: Operation, amount: int, now: datetime) -> None:
        if amount > self.refundable:
            raise ValueError(f"cannot refund {amount}: only {self.refundable} is refundable")
        self._finish(op, OperationStatus.SUCCEEDED, amount=amount, now=now)
        if amount:
            self.refunded_amount += amount
            self._enter(LedgerKind.REFUND, amount, self.psp_authorization_id, now)
        if self.status is PaymentStatus.CAPTURED and self.refundable == 0:
            self.status = PaymentStatus.REFUNDED

    def operation_failed(self, op: Operation, reason: str, now: datetime) -> None:
        """The psp refused a void, capture or refund: nothing moved."""
        self._finish(op, OperationStatus.FAILED, outcome=reason, now=now)

    def attempt_failed(
        self, op: Operation, error: str, *, outcome_unknown: bool, retry_at: datetime, now: datetime
    ) -> None:
        """A call gave no answer; try again at `retry_at`. Once an outcome is unknown it stays
        unknown until reconciled: a later call that surely was not sent proves nothing."""
        op.attempts += 1
        op.last_error = error[:500]
        op.next_attempt_at = retry_at
        if outcome_unknown:
            op.status = OperationStatus.UNKNOWN
        if op.kind is OperationKind.AUTHORIZE and op.status is OperationStatus.UNKNOWN:
            self.status = PaymentStatus.PENDING_UNKNOWN
        self.updated_at = now

    @property
    def refundable(self) -> int:
        return self.captured_amount - self.refunded_amount

    @property
    def holds_authorization(self) -> bool:
        return self.status is PaymentStatus.AUTHORIZED

    def _finish(
        self,
        op: Operation,
        status: OperationStatus,
        *,
        now: datetime,
        amount: int | None = None,
        outcome: str | None = None,
    ) -> None:
        if op.finished:
            raise ValueError(f"operation {op.kind.value} of {self.order_id} is finished already")
        op.status = status
        op.amount = amount
        op.outcome = outcome
        op.completed_at = now
        op.next_attempt_at = now
        self.updated_at = now

    def _enter(
        self, kind: LedgerKind, amount: int, psp_reference: str | None, now: datetime
    ) -> None:
        self.new_entries.append(
            LedgerEntry(self.order_id, kind, amount, self.currency, psp_reference, now)
        )


def new_payment(
    *,
    order_id: str,
    user_id: str,
    amount: int,
    currency: str,
    payment_token: str,
    cause: Cause | None,
    now: datetime,
) -> Payment:
    """A payment whose authorization is requested."""
    payment = Payment(
        id=str(uuid.uuid4()),
        order_id=order_id,
        user_id=user_id,
        amount=amount,
        currency=currency,
        status=PaymentStatus.PENDING,
        payment_token=payment_token,
        created_at=now,
        updated_at=now,
    )
    payment.request(OperationKind.AUTHORIZE, cause=cause, now=now)
    return payment


def voided_placeholder(*, order_id: str, now: datetime) -> Payment:
    """What a void leaves for an order never seen: a late authorize then charges nothing."""
    return Payment(
        id=str(uuid.uuid4()),
        order_id=order_id,
        user_id="",
        amount=0,
        currency=NO_CURRENCY,
        status=PaymentStatus.VOIDED,
        created_at=now,
        updated_at=now,
    )
