"""The processor against a fake psp: outcomes, retries, and reconciling unknown outcomes."""

from __future__ import annotations

import random

import pytest

from payments.adapters.memory import FakeClock, FakePaymentProvider, InMemoryPaymentsUnitOfWork
from payments.domain.model import Cause, LedgerKind, OperationStatus, PaymentStatus
from payments.service_layer import handlers, messages
from payments.service_layer.processor import Backoff, PaymentProcessor

CAUSE = Cause("m1", "c1", None)


class World:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.uow = InMemoryPaymentsUnitOfWork()
        self.psp = FakePaymentProvider()
        self.processor = PaymentProcessor(
            reader=lambda: self.uow,
            writer=lambda: self.uow,
            provider=self.psp,
            clock=clock,
            backoff=Backoff(1.0, 8.0, rng=random.Random(3)),
        )

    async def authorize(
        self, order_id: str = "o1", card: str = "tok_visa", amount: int = 2500
    ) -> None:
        command = handlers.AuthorizePayment(
            order_id=order_id, user_id="u1", amount=amount, currency="EUR", payment_token=card
        )
        await handlers.authorize_payment(self.uow, command, cause=CAUSE, now=self.clock())

    def replies(self) -> list[tuple[str, dict[str, object]]]:
        return [(m.type, m.data) for m in self.uow.published]

    def payment(self, order_id: str = "o1"):  # type: ignore[no-untyped-def]
        return self.uow.committed.rows[order_id]

    async def run(self, order_id: str = "o1", *, after: float = 0.0) -> None:
        self.clock.advance(after)
        await self.processor.process(order_id)


@pytest.fixture
def world(clock: FakeClock) -> World:
    return World(clock)


async def test_approved(world: World) -> None:
    await world.authorize()
    await world.run()
    payment = world.payment()
    assert payment.status is PaymentStatus.AUTHORIZED
    assert world.replies() == [
        (
            messages.PAYMENT_AUTHORIZED,
            {
                "order_id": "o1",
                "payment_id": payment.id,
                "amount": {"amount": 2500, "currency": "EUR"},
            },
        )
    ]
    assert world.uow.published[0].cause == CAUSE
    assert world.psp.calls == ["authorize o1:authorize"]
    assert [e.kind for e in world.uow.committed.entries] == [LedgerKind.AUTHORIZATION]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_chargeDeclined", "card_declined"),
        ("tok_insufficientFunds", "insufficient_funds"),
        ("tok_stolen", "invalid_token"),
    ],
)
async def test_declined(world: World, token: str, reason: str) -> None:
    await world.authorize(card=token)
    await world.run()
    assert world.payment().status is PaymentStatus.DECLINED
    assert world.replies() == [(messages.PAYMENT_DECLINED, {"order_id": "o1", "reason": reason})]
    assert world.uow.committed.entries == []


async def test_timeout_after_charge_is_reconciled_not_declined_nor_charged_twice(
    world: World,
) -> None:
    world.psp.failures = ["timeout_after_charge"]
    await world.authorize()
    await world.run()
    payment = world.payment()
    assert payment.status is PaymentStatus.PENDING_UNKNOWN
    assert payment.head().status is OperationStatus.UNKNOWN
    assert world.replies() == []
    assert len(world.psp.authorizations) == 1  # the psp did charge

    await world.run()  # not due yet: nothing happens
    assert world.psp.calls == ["authorize o1:authorize"]

    await world.run(after=10)
    assert world.payment().status is PaymentStatus.AUTHORIZED
    assert world.psp.calls == ["authorize o1:authorize", "find o1:authorize"]
    assert [t for t, _ in world.replies()] == [messages.PAYMENT_AUTHORIZED]
    assert len(world.psp.authorizations) == 1


async def test_an_unknown_outcome_that_charged_nothing_is_sent_again_with_the_same_key(
    world: World,
) -> None:
    world.psp.failures = ["error", "error"]  # 5xx: may have acted (here it did not)
    await world.authorize()
    await world.run()
    assert world.payment().status is PaymentStatus.PENDING_UNKNOWN
    await world.run(after=10)  # the lookup fails too: still unknown
    assert world.payment().status is PaymentStatus.PENDING_UNKNOWN
    await world.run(after=10)
    assert world.payment().status is PaymentStatus.AUTHORIZED
    assert world.psp.calls == [
        "authorize o1:authorize",
        "find o1:authorize",
        "find o1:authorize",
        "authorize o1:authorize",
    ]
    assert len(world.psp.authorizations) == 1


async def test_a_psp_that_is_down_is_retried_with_growing_backoff(world: World) -> None:
    world.psp.failures = ["unavailable"] * 4
    await world.authorize()
    delays = []
    for _ in range(4):
        before = world.clock()
        await world.run()
        op = world.payment().head()
        assert op.status is OperationStatus.REQUESTED  # never sent: nothing is unknown
        delays.append((op.next_attempt_at - before).total_seconds())
        world.clock.now = op.next_attempt_at
    assert world.payment().status is PaymentStatus.PENDING
    assert delays == sorted(delays)
    assert 0.5 <= delays[0] <= 1.0 and 4.0 <= delays[3] <= 8.0
    await world.run()
    assert world.payment().status is PaymentStatus.AUTHORIZED
    assert world.payment().operations[0].attempts == 4


async def test_a_void_waits_for_the_authorization_then_releases_it(world: World) -> None:
    world.psp.failures = ["unavailable"]
    await world.authorize()
    await world.run()
    await handlers.void_payment(world.uow, "o1", cause=Cause("m2"), now=world.clock())
    await world.run(after=5)
    assert world.payment().status is PaymentStatus.VOIDED
    assert [t for t, _ in world.replies()] == [messages.PAYMENT_AUTHORIZED, messages.PAYMENT_VOIDED]
    [auth] = world.psp.authorizations.values()
    assert auth.status == "voided"
    assert [e.kind for e in world.uow.committed.entries] == [
        LedgerKind.AUTHORIZATION,
        LedgerKind.VOID,
    ]


async def test_voiding_a_declined_payment_calls_nobody(world: World) -> None:
    await world.authorize(card="tok_chargeDeclined")
    await world.run()
    await handlers.void_payment(world.uow, "o1", cause=CAUSE, now=world.clock())
    await world.run()
    assert [t for t, _ in world.replies()] == [messages.PAYMENT_DECLINED, messages.PAYMENT_VOIDED]
    assert world.psp.calls == ["authorize o1:authorize"]


async def test_capture_with_an_unknown_outcome_is_reconciled(world: World) -> None:
    await world.authorize()
    await world.run()
    world.psp.failures = ["timeout_after_charge"]
    await handlers.capture_payment(world.uow, "o1", cause=CAUSE, now=world.clock())
    await world.run()
    assert world.payment().status is PaymentStatus.AUTHORIZED
    await world.run(after=10)
    payment = world.payment()
    assert (payment.status, payment.captured_amount) == (PaymentStatus.CAPTURED, 2500)
    assert world.psp.calls[1:] == ["capture o1:capture", f"get {payment.psp_authorization_id}"]
    await handlers.capture_payment(world.uow, "o1", cause=CAUSE, now=world.clock())
    assert [t for t, _ in world.replies()][-2:] == [messages.PAYMENT_CAPTURED] * 2


async def test_cancellation_refunds_what_was_captured(world: World) -> None:
    await world.authorize()
    await world.run()
    await handlers.capture_payment(world.uow, "o1", cause=CAUSE, now=world.clock())
    await world.run()
    await handlers.refund_cancelled_order(world.uow, "o1", cause=CAUSE, now=world.clock())
    await world.run()
    payment = world.payment()
    assert (payment.status, payment.refunded_amount) == (PaymentStatus.REFUNDED, 2500)
    assert world.replies()[-1] == (
        messages.PAYMENT_REFUNDED,
        {"order_id": "o1", "amount": {"amount": 2500, "currency": "EUR"}},
    )
    await handlers.refund_cancelled_order(world.uow, "o1", cause=CAUSE, now=world.clock())
    assert world.replies()[-1] == world.replies()[-2]
    assert world.psp.calls.count("refund o1:refund") == 1
    kinds = [e.kind for e in world.uow.committed.entries]
    assert kinds == [LedgerKind.AUTHORIZATION, LedgerKind.CAPTURE, LedgerKind.REFUND]


async def test_cancellation_before_the_capture_captures_then_refunds(world: World) -> None:
    await world.authorize()
    await world.run()
    await handlers.refund_cancelled_order(world.uow, "o1", cause=CAUSE, now=world.clock())
    await world.run()
    assert [t for t, _ in world.replies()] == [
        messages.PAYMENT_AUTHORIZED,
        messages.PAYMENT_CAPTURED,
        messages.PAYMENT_REFUNDED,
    ]
    await handlers.capture_payment(world.uow, "o1", cause=CAUSE, now=world.clock())
    assert world.replies()[-1][0] == messages.PAYMENT_CAPTURED
    assert world.psp.calls.count("capture o1:capture") == 1


async def test_a_refused_refund_is_reported(world: World) -> None:
    await world.authorize()
    await world.run()
    await handlers.capture_payment(world.uow, "o1", cause=CAUSE, now=world.clock())
    await world.run()
    auth_id = world.payment().psp_authorization_id
    world.psp.authorizations[auth_id] = world.psp.authorizations[auth_id].__class__(
        **{**world.psp.authorizations[auth_id].__dict__, "status": "voided"}
    )
    await handlers.refund_cancelled_order(world.uow, "o1", cause=CAUSE, now=world.clock())
    await world.run()
    assert world.replies()[-1] == (
        messages.PAYMENT_REFUND_FAILED,
        {"order_id": "o1", "reason": "invalid_state"},
    )
    assert world.payment().status is PaymentStatus.CAPTURED


async def test_a_zero_amount_order_needs_no_psp(world: World) -> None:
    await world.authorize(amount=0)
    await world.run()
    await handlers.refund_cancelled_order(world.uow, "o1", cause=CAUSE, now=world.clock())
    await world.run()
    assert [t for t, _ in world.replies()] == [
        messages.PAYMENT_AUTHORIZED,
        messages.PAYMENT_CAPTURED,
        messages.PAYMENT_REFUNDED,
    ]
    assert world.psp.calls == []


async def test_the_sweep_finds_due_operations(world: World) -> None:
    world.psp.failures = ["unavailable"]
    await world.authorize("o1")
    await world.authorize("o2")
    assert await world.processor.sweep() == ["o1", "o2"]
    await world.run("o1")
    assert await world.processor.sweep() == ["o2"]
    world.clock.advance(60)
    assert sorted(await world.processor.sweep()) == ["o1", "o2"]


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(1))
    for attempts, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0), (500, 4.0)]:
        delay = backoff.delay(attempts)
        assert ceiling / 2 <= delay <= ceiling
