"""Command handlers on the in-memory unit of work: what they queue, what they answer again."""

from __future__ import annotations

import pytest

from payments.adapters.memory import FakeClock, InMemoryPaymentsUnitOfWork
from payments.domain.model import Cause, OperationKind, OperationStatus, PaymentStatus
from payments.errors import PaymentNotFoundError
from payments.service_layer import handlers, messages

CAUSE = Cause("m1", "c1", "00-trace-span-01")


def command(order_id: str = "o1", amount: int = 2500) -> handlers.AuthorizePayment:
    return handlers.AuthorizePayment(
        order_id=order_id, user_id="u1", amount=amount, currency="EUR", payment_token="tok_visa"
    )


async def settle_authorization(uow: InMemoryPaymentsUnitOfWork, order_id: str = "o1") -> None:
    async with uow:
        payment = await uow.payments.get(order_id)
        assert payment is not None
        payment.authorization_succeeded(payment.head(), "auth_1", payment.created_at)  # type: ignore[arg-type]
        await uow.payments.save(payment)
        await uow.commit()


async def test_authorize_queues_the_psp_call_and_answers_nothing_yet(clock: FakeClock) -> None:
    uow = InMemoryPaymentsUnitOfWork()
    assert await handlers.authorize_payment(uow, command(), cause=CAUSE, now=clock()) is True
    payment = uow.committed.rows["o1"]
    assert payment.status is PaymentStatus.PENDING
    assert [op.kind for op in payment.pending_operations] == [OperationKind.AUTHORIZE]
    assert uow.published == []


async def test_a_duplicate_authorize_gets_the_same_answer_and_queues_nothing(
    clock: FakeClock,
) -> None:
    uow = InMemoryPaymentsUnitOfWork()
    await handlers.authorize_payment(uow, command(), cause=CAUSE, now=clock())
    # While the first is in progress: no answer (it will come), nothing new queued.
    await handlers.authorize_payment(uow, command(), cause=Cause("m2"), now=clock())
    assert uow.published == []
    assert len(uow.committed.rows["o1"].operations) == 1

    await settle_authorization(uow)
    again = await handlers.authorize_payment(uow, command(amount=1), cause=Cause("m3"), now=clock())
    assert again is False
    [reply] = uow.published
    assert reply.type == messages.PAYMENT_AUTHORIZED
    assert reply.data["amount"] == {"amount": 2500, "currency": "EUR"}
    assert reply.cause == Cause("m3")


async def test_void_of_an_unknown_order_answers_and_blocks_a_late_authorize(
    clock: FakeClock,
) -> None:
    uow = InMemoryPaymentsUnitOfWork()
    assert await handlers.void_payment(uow, "o7", cause=CAUSE, now=clock()) is False
    assert [(m.type, m.data) for m in uow.published] == [
        (messages.PAYMENT_VOIDED, {"order_id": "o7"})
    ]
    assert await handlers.authorize_payment(uow, command("o7"), cause=CAUSE, now=clock()) is False
    assert [m.type for m in uow.published] == [messages.PAYMENT_VOIDED] * 2
    assert uow.committed.rows["o7"].operations == []


async def test_void_and_capture_queue_behind_the_authorization(clock: FakeClock) -> None:
    uow = InMemoryPaymentsUnitOfWork()
    await handlers.authorize_payment(uow, command(), cause=CAUSE, now=clock())
    assert await handlers.void_payment(uow, "o1", cause=CAUSE, now=clock()) is True
    assert await handlers.void_payment(uow, "o1", cause=CAUSE, now=clock()) is True
    kinds = [op.kind for op in uow.committed.rows["o1"].operations]
    assert kinds == [OperationKind.AUTHORIZE, OperationKind.VOID]


async def test_capture_without_a_payment_is_refused(clock: FakeClock) -> None:
    with pytest.raises(PaymentNotFoundError):
        await handlers.capture_payment(
            InMemoryPaymentsUnitOfWork(), "nope", cause=CAUSE, now=clock()
        )


async def test_a_refused_capture_is_tried_again(clock: FakeClock) -> None:
    uow = InMemoryPaymentsUnitOfWork()
    await handlers.authorize_payment(uow, command(), cause=CAUSE, now=clock())
    await settle_authorization(uow)
    await handlers.capture_payment(uow, "o1", cause=CAUSE, now=clock())
    async with uow:
        payment = await uow.payments.get("o1")
        assert payment is not None
        payment.operation_failed(payment.head(), "invalid_state", clock())  # type: ignore[arg-type]
        await uow.payments.save(payment)
        await uow.commit()
    assert await handlers.capture_payment(uow, "o1", cause=CAUSE, now=clock()) is True
    capture = uow.committed.rows["o1"].operation(OperationKind.CAPTURE)
    assert capture is not None and capture.status is OperationStatus.REQUESTED


async def test_cancelling_an_uncaptured_payment_captures_then_refunds(clock: FakeClock) -> None:
    uow = InMemoryPaymentsUnitOfWork()
    await handlers.authorize_payment(uow, command(), cause=CAUSE, now=clock())
    await settle_authorization(uow)
    assert await handlers.refund_cancelled_order(uow, "o1", cause=CAUSE, now=clock()) is True
    kinds = [op.kind for op in uow.committed.rows["o1"].pending_operations]
    assert kinds == [OperationKind.CAPTURE, OperationKind.REFUND]
    # The capture command arriving late joins the queued capture.
    await handlers.capture_payment(uow, "o1", cause=CAUSE, now=clock())
    assert len(uow.committed.rows["o1"].operations) == 3


async def test_cancelling_an_order_without_payment_fails_the_refund(clock: FakeClock) -> None:
    uow = InMemoryPaymentsUnitOfWork()
    assert await handlers.refund_cancelled_order(uow, "o5", cause=CAUSE, now=clock()) is False
    assert [(m.type, m.data) for m in uow.published] == [
        (messages.PAYMENT_REFUND_FAILED, {"order_id": "o5", "reason": "payment_not_found"})
    ]


async def test_only_the_owner_or_an_admin_sees_a_payment(clock: FakeClock) -> None:
    uow = InMemoryPaymentsUnitOfWork()
    await handlers.authorize_payment(uow, command(), cause=CAUSE, now=clock())
    found, ledger = await handlers.payment_of(uow, "o1", subject="u1", is_admin=False)
    assert (found.order_id, ledger) == ("o1", [])
    await handlers.payment_of(uow, "o1", subject="root", is_admin=True)
    for subject in ("u2", ""):
        with pytest.raises(PaymentNotFoundError):
            await handlers.payment_of(uow, "o1", subject=subject, is_admin=False)
    with pytest.raises(PaymentNotFoundError):
        await handlers.payment_of(uow, "o2", subject="u1", is_admin=False)
