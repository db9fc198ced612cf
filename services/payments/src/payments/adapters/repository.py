"""Payments' storage on SQLAlchemy (SQLite or PostgreSQL), and its unit of work."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database
from chassis.messaging import Envelope, record_events
from payments.adapters.orm import ledger_entries, payment_operations, payments
from payments.domain.model import (
    Cause,
    LedgerEntry,
    LedgerKind,
    Operation,
    OperationKind,
    OperationStatus,
    Payment,
    PaymentStatus,
)
from payments.service_layer.ports import Message

SOURCE = "payments"
_UNFINISHED = (OperationStatus.REQUESTED.value, OperationStatus.UNKNOWN.value)


def _payment_values(payment: Payment) -> dict[str, Any]:
    return {
        "order_id": payment.order_id,
        "id": payment.id,
        "user_id": payment.user_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "status": payment.status.value,
        "payment_token": payment.payment_token,
        "psp_authorization_id": payment.psp_authorization_id,
        "decline_reason": payment.decline_reason,
        "authorized_amount": payment.authorized_amount,
        "captured_amount": payment.captured_amount,
        "voided_amount": payment.voided_amount,
        "refunded_amount": payment.refunded_amount,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
    }


def _operation_values(op: Operation) -> dict[str, Any]:
    cause = op.cause
    return {
        "id": op.id,
        "order_id": op.order_id,
        "position": op.position,
        "kind": op.kind.value,
        "status": op.status.value,
        "idempotency_key": op.idempotency_key,
        "attempts": op.attempts,
        "next_attempt_at": op.next_attempt_at,
        "amount": op.amount,
        "outcome": op.outcome,
        "last_error": op.last_error,
        "cause_id": cause.message_id if cause else None,
        "correlation_id": cause.correlation_id if cause else None,
        "traceparent": cause.traceparent if cause else None,
        "created_at": op.created_at,
        "completed_at": op.completed_at,
    }


def _entry_values(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "order_id": entry.order_id,
        "kind": entry.kind.value,
        "amount": entry.amount,
        "currency": entry.currency,
        "psp_reference": entry.psp_reference,
        "at": entry.at,
    }


def _operation(row: RowMapping) -> Operation:
    cause = (
        Cause(row["cause_id"], row["correlation_id"], row["traceparent"])
        if row["cause_id"]
        else None
    )
    return Operation(
        id=row["id"],
        order_id=row["order_id"],
        position=row["position"],
        kind=OperationKind(row["kind"]),
        status=OperationStatus(row["status"]),
        idempotency_key=row["idempotency_key"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        cause=cause,
        amount=row["amount"],
        outcome=row["outcome"],
        last_error=row["last_error"],
        completed_at=row["completed_at"],
    )


def _payment(row: RowMapping, operations: list[Operation]) -> Payment:
    return Payment(
        id=row["id"],
        order_id=row["order_id"],
        user_id=row["user_id"],
        amount=row["amount"],
        currency=row["currency"],
        status=PaymentStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        payment_token=row["payment_token"],
        psp_authorization_id=row["psp_authorization_id"],
        decline_reason=row["decline_reason"],
        authorized_amount=row["authorized_amount"],
        captured_amount=row["captured_amount"],
        voided_amount=row["voided_amount"],
        refunded_amount=row["refunded_amount"],
        operations=operations,
    )


def _entry(row: RowMapping) -> LedgerEntry:
    return LedgerEntry(
        order_id=row["order_id"],
        kind=LedgerKind(row["kind"]),
        amount=row["amount"],
        currency=row["currency"],
        psp_reference=row["psp_reference"],
        at=row["at"],
    )


class SqlPaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._stored_operations: set[str] = set()

    async def add(self, payment: Payment) -> None:
        await self.session.execute(insert(payments).values(_payment_values(payment)))
        await self._store_children(payment)

    async def get(self, order_id: str, *, lock: bool = False) -> Payment | None:
        statement = select(payments).where(payments.c.order_id == order_id)
        if lock:
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).mappings().first()
        if row is None:
            return None
        ops = await self.session.execute(
            select(payment_operations)
            .where(payment_operations.c.order_id == order_id)
            .order_by(payment_operations.c.position)
        )
        operations = [_operation(op) for op in ops.mappings()]
        self._stored_operations.update(op.id for op in operations)
        return _payment(row, operations)

    async def save(self, payment: Payment) -> None:
        values = _payment_values(payment)
        for fixed in ("order_id", "id", "created_at"):
            del values[fixed]
        await self.session.execute(
            update(payments).where(payments.c.order_id == payment.order_id).values(values)
        )
        await self._store_children(payment)

    async def _store_children(self, payment: Payment) -> None:
        for op in payment.operations:
            values = _operation_values(op)
            if op.id in self._stored_operations:
                del values["id"]
                await self.session.execute(
                    update(payment_operations)
                    .where(payment_operations.c.id == op.id)
                    .values(values)
                )
            else:
                await self.session.execute(insert(payment_operations).values(values))
                self._stored_operations.add(op.id)
        if payment.new_entries:
            await self.session.execute(
                insert(ledger_entries), [_entry_values(e) for e in payment.new_entries]
            )
            payment.new_entries.clear()

    async def ledger(self, order_id: str) -> list[LedgerEntry]:
        result = await self.session.execute(
            select(ledger_entries)
            .where(ledger_entries.c.order_id == order_id)
            .order_by(ledger_entries.c.seq)
        )
        return [_entry(row) for row in result.mappings()]

    async def all(self) -> list[tuple[Payment, list[LedgerEntry]]]:
        operations: dict[str, list[Operation]] = {}
        ops = await self.session.execute(
            select(payment_operations).order_by(
                payment_operations.c.order_id, payment_operations.c.position
            )
        )
        for row in ops.mappings():
            operations.setdefault(row["order_id"], []).append(_operation(row))
        entries: dict[str, list[LedgerEntry]] = {}
        rows = await self.session.execute(select(ledger_entries).order_by(ledger_entries.c.seq))
        for row in rows.mappings():
            entries.setdefault(row["order_id"], []).append(_entry(row))
        result = await self.session.execute(
            select(payments).order_by(payments.c.created_at, payments.c.order_id)
        )
        return [
            (_payment(row, operations.get(row["order_id"], [])), entries.get(row["order_id"], []))
            for row in result.mappings()
        ]

    async def due(self, now: datetime, *, limit: int) -> list[str]:
        result = await self.session.execute(
            select(payment_operations.c.order_id)
            .where(
                payment_operations.c.status.in_(_UNFINISHED),
                payment_operations.c.next_attempt_at <= now,
            )
            .group_by(payment_operations.c.order_id)
            .order_by(func.min(payment_operations.c.next_attempt_at))
            .limit(limit)
        )
        return list(result.scalars())


def envelope_of(message: Message) -> Envelope:
    cause = message.cause
    if cause is None:
        return Envelope(
            type=message.type, source=SOURCE, subject=message.order_id, data=message.data
        )
    return Envelope(
        type=message.type,
        source=SOURCE,
        subject=message.order_id,
        data=message.data,
        correlation_id=cause.correlation_id or cause.message_id,
        causation_id=cause.message_id,
        traceparent=cause.traceparent,
    )


class SqlPaymentsUnitOfWork:
    """A unit of work on one session; messages go to the outbox in the same transaction.

    `SqlPaymentsUnitOfWork(database, write=...)` owns its session and rolls back unless
    committed. `joining(session)` works inside a transaction someone else owns (the inbox's):
    its `commit()` only writes the outbox rows, and the owner commits.
    """

    payments: SqlPaymentRepository

    def __init__(self, database: Database | None, *, write: bool = True) -> None:
        self._database = database
        self._write = write
        self._session: AsyncSession | None = None
        self._outgoing: list[Message] = []

    @classmethod
    def joining(cls, session: AsyncSession) -> SqlPaymentsUnitOfWork:
        uow = cls(None)
        uow._session = session
        return uow

    @property
    def _owns_session(self) -> bool:
        return self._database is not None

    async def __aenter__(self) -> SqlPaymentsUnitOfWork:
        if self._database is not None:
            factory = self._database.write_sessions if self._write else self._database.sessions
            self._session = factory()
        assert self._session is not None
        self.payments = SqlPaymentRepository(self._session)
        self._outgoing = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_session and self._session is not None:
            await self._session.rollback()
            await self._session.close()

    def publish(self, message: Message) -> None:
        self._outgoing.append(message)

    async def commit(self) -> None:
        assert self._session is not None
        outgoing, self._outgoing = self._outgoing, []
        if outgoing:
            await record_events(self._session, [envelope_of(m) for m in outgoing])
        if self._owns_session:
            await self._session.commit()
