"""The payment's state machine, its queue of psp operations and its append-only ledger."""

from datetime import UTC, datetime, timedelta

import pytest

from payments.domain.model import (
    Cause,
    LedgerKind,
    OperationKind,
    OperationStatus,
    Payment,
    PaymentStatus,
    idempotency_key,
    new_payment,
    voided_placeholder,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)
CAUSE = Cause("msg-1", "corr-1", None)


def payment(amount: int = 2500) -> Payment:
    return new_payment(
        order_id="o1", user_id="u1", amount=amount, currency="EUR",
        payment_token="tok_visa", cause=CAUSE, now=NOW,
    )  # fmt: skip


def test_a_new_payment_waits_for_its_authorization() -> None:
    p = payment()
    assert p.status is PaymentStatus.PENDING
    op = p.head()
    assert op is not None
    assert (op.kind, op.status, op.idempotency_key) == (
        OperationKind.AUTHORIZE,
        OperationStatus.REQUESTED,
        "o1:authorize",
    )
    assert op.cause == CAUSE
    assert idempotency_key("o1", OperationKind.REFUND) == "o1:refund"


def test_authorize_capture_refund_writes_the_ledger() -> None:
    p = payment()
    p.authorization_succeeded(p.head(), "auth_1", NOW)  # type: ignore[arg-type]
    assert (p.status, p.authorized_amount, p.payment_token) == (
        PaymentStatus.AUTHORIZED, 2500, None,
    )  # fmt: skip
    p.capture_succeeded(p.request(OperationKind.CAPTURE, cause=None, now=NOW), 2500, NOW)
    assert (p.status, p.captured_amount, p.refundable) == (PaymentStatus.CAPTURED, 2500, 2500)
    refund = p.request(OperationKind.REFUND, cause=None, now=NOW)
    with pytest.raises(ValueError, match="refundable"):
        p.refund_succeeded(refund, 2501, NOW)
    p.refund_succeeded(refund, 2500, NOW)
    assert (p.status, p.refunded_amount, p.refundable) == (PaymentStatus.REFUNDED, 2500, 0)
    assert [(e.kind, e.amount, e.psp_reference) for e in p.new_entries] == [
        (LedgerKind.AUTHORIZATION, 2500, "auth_1"),
        (LedgerKind.CAPTURE, 2500, "auth_1"),
        (LedgerKind.REFUND, 2500, "auth_1"),
    ]
    assert all(op.finished for op in p.operations)


def test_a_decline_keeps_its_reason_and_forgets_the_token() -> None:
    p = payment()
    p.authorization_declined(p.head(), "insufficient_funds", NOW)  # type: ignore[arg-type]
    assert (p.status, p.decline_reason, p.payment_token) == (
        PaymentStatus.DECLINED, "insufficient_funds", None,
    )  # fmt: skip
    assert p.operation(OperationKind.AUTHORIZE).status is OperationStatus.FAILED  # type: ignore[union-attr]
    assert p.new_entries == []
    p.void_succeeded(p.request(OperationKind.VOID, cause=None, now=NOW), NOW)
    assert p.status is PaymentStatus.DECLINED  # nothing was held, nothing to release
    assert p.new_entries == []


def test_void_releases_the_hold() -> None:
    p = payment()
    p.authorization_succeeded(p.head(), "auth_1", NOW)  # type: ignore[arg-type]
    void = p.request(OperationKind.VOID, cause=None, now=NOW)
    p.void_succeeded(void, NOW)
    assert (p.status, p.voided_amount, void.amount) == (PaymentStatus.VOIDED, 2500, 2500)
    assert [e.kind for e in p.new_entries] == [LedgerKind.AUTHORIZATION, LedgerKind.VOID]


def test_operations_run_in_order_once_each() -> None:
    p = payment()
    void = p.request(OperationKind.VOID, cause=None, now=NOW)
    assert p.request(OperationKind.VOID, cause=None, now=NOW) is void
    assert [op.kind for op in p.pending_operations] == [OperationKind.AUTHORIZE, OperationKind.VOID]
    assert p.head().kind is OperationKind.AUTHORIZE  # type: ignore[union-attr]
    p.authorization_succeeded(p.head(), "auth_1", NOW)  # type: ignore[arg-type]
    assert p.head() is void
    with pytest.raises(ValueError, match="finished"):
        p.authorization_succeeded(p.operations[0], "auth_2", NOW)


def test_an_unknown_authorization_outcome_is_pending_unknown_until_settled() -> None:
    p = payment()
    op = p.head()
    assert op is not None
    p.attempt_failed(op, "refused", outcome_unknown=False, retry_at=LATER, now=NOW)
    assert (p.status, op.status, op.attempts) == (
        PaymentStatus.PENDING, OperationStatus.REQUESTED, 1,
    )  # fmt: skip
    p.attempt_failed(op, "timed out", outcome_unknown=True, retry_at=LATER, now=NOW)
    assert (p.status, op.status, op.next_attempt_at) == (
        PaymentStatus.PENDING_UNKNOWN, OperationStatus.UNKNOWN, LATER,
    )  # fmt: skip
    # A later call that surely was not sent proves nothing: still unknown.
    p.attempt_failed(op, "refused", outcome_unknown=False, retry_at=LATER, now=NOW)
    assert op.status is OperationStatus.UNKNOWN
    p.authorization_succeeded(op, "auth_1", NOW)
    assert p.status is PaymentStatus.AUTHORIZED


def test_an_unknown_capture_does_not_change_the_payment_status() -> None:
    p = payment()
    p.authorization_succeeded(p.head(), "auth_1", NOW)  # type: ignore[arg-type]
    capture = p.request(OperationKind.CAPTURE, cause=None, now=NOW)
    p.attempt_failed(capture, "timed out", outcome_unknown=True, retry_at=LATER, now=NOW)
    assert (p.status, capture.status) == (PaymentStatus.AUTHORIZED, OperationStatus.UNKNOWN)


def test_a_failed_operation_can_be_requested_again() -> None:
    p = payment()
    p.authorization_succeeded(p.head(), "auth_1", NOW)  # type: ignore[arg-type]
    capture = p.request(OperationKind.CAPTURE, cause=None, now=NOW)
    p.operation_failed(capture, "invalid_state", NOW)
    again = p.request(OperationKind.CAPTURE, cause=CAUSE, now=LATER)
    assert again is capture
    assert (again.status, again.attempts, again.outcome, again.cause) == (
        OperationStatus.REQUESTED, 0, None, CAUSE,
    )  # fmt: skip


def test_a_void_for_an_unknown_order_leaves_a_placeholder() -> None:
    p = voided_placeholder(order_id="o9", now=NOW)
    assert (p.status, p.amount, p.currency, p.operations) == (PaymentStatus.VOIDED, 0, "XXX", [])
