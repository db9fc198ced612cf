"""Payments' HTTP API: an order's payment for its owner, and the admin audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from chassis import Money, Principal, api_router, require_role
from payments.domain.model import LedgerEntry, Payment
from payments.service_layer import handlers
from payments.service_layer.ports import UnitOfWorkFactory

OrderIdQuery = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class PaymentOut(BaseModel):
    """An order's payment. The gateway shows `status`, `amount`, `captured`, `refunded`."""

    payment_id: str
    order_id: str
    status: str
    amount: Money
    authorized: Money
    captured: Money
    voided: Money
    refunded: Money
    decline_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, payment: Payment) -> PaymentOut:
        def money(amount: int) -> Money:
            return Money(amount=amount, currency=payment.currency)

        return cls(
            payment_id=payment.id,
            order_id=payment.order_id,
            status=payment.status.value,
            amount=money(payment.amount),
            authorized=money(payment.authorized_amount),
            captured=money(payment.captured_amount),
            voided=money(payment.voided_amount),
            refunded=money(payment.refunded_amount),
            decline_reason=payment.decline_reason,
            created_at=payment.created_at,
            updated_at=payment.updated_at,
        )


class LedgerEntryOut(BaseModel):
    kind: str
    amount: int
    psp_reference: str | None
    at: datetime


class PendingOperationOut(BaseModel):
    kind: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


class PaymentAudit(BaseModel):
    order_id: str
    payment_id: str
    user_id: str
    status: str
    amount: int
    currency: str
    authorized: int
    captured: int
    voided: int
    refunded: int
    decline_reason: str | None
    psp_authorization_id: str | None
    pending: list[PendingOperationOut]
    ledger: list[LedgerEntryOut]

    @classmethod
    def of(cls, payment: Payment, ledger: list[LedgerEntry]) -> PaymentAudit:
        return cls(
            order_id=payment.order_id,
            payment_id=payment.id,
            user_id=payment.user_id,
            status=payment.status.value,
            amount=payment.amount,
            currency=payment.currency,
            authorized=payment.authorized_amount,
            captured=payment.captured_amount,
            voided=payment.voided_amount,
            refunded=payment.refunded_amount,
            decline_reason=payment.decline_reason,
            psp_authorization_id=payment.psp_authorization_id,
            pending=[
                PendingOperationOut(
                    kind=op.kind.value,
                    status=op.status.value,
                    attempts=op.attempts,
                    next_attempt_at=op.next_attempt_at,
                    last_error=op.last_error,
                )
                for op in payment.pending_operations
            ],
            ledger=[
                LedgerEntryOut(
                    kind=e.kind.value, amount=e.amount, psp_reference=e.psp_reference, at=e.at
                )
                for e in ledger
            ],
        )


class PaymentAuditList(BaseModel):
    items: list[PaymentAudit]


def build_routers(*, reader: UnitOfWorkFactory) -> list[APIRouter]:
    public = api_router(prefix="/api/v1", tags=["payments"])
    signed_in = Depends(require_role())

    @public.get("/payments", response_model=PaymentOut)
    async def get_payment(
        order_id: OrderIdQuery, response: Response, principal: Principal = signed_in
    ) -> PaymentOut:
        """The payment of order `order_id`: 404 unless it is the caller's (or an admin asks)."""
        response.headers["Cache-Control"] = "private, no-store"
        payment, _ = await handlers.payment_of(
            reader(), order_id, subject=principal.subject, is_admin=principal.is_admin
        )
        return PaymentOut.of(payment)

    internal = api_router(prefix="/internal", tags=["payments-admin"])

    @internal.get(
        "/audit/payments",
        response_model=PaymentAuditList,
        dependencies=[Depends(require_role("admin"))],
    )
    async def audit_payments() -> PaymentAuditList:
        rows = await handlers.all_payments(reader())
        return PaymentAuditList(items=[PaymentAudit.of(p, ledger) for p, ledger in rows])

    return [public, internal]
