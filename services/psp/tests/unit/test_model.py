"""The card rules: tokens decide, and capture, void and refund follow the status."""

from datetime import UTC, datetime

import pytest

from psp.domain.model import Authorization, AuthorizationStatus, new_authorization
from psp.errors import AmountTooLargeError, InvalidStateError, InvalidTokenError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def authorize(card: str = "tok_visa", amount: int = 1000) -> Authorization:
    return new_authorization(
        idempotency_key="k", reference="order-1", token=card, amount=amount,
        currency="EUR", now=NOW,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        ("tok_visa", AuthorizationStatus.AUTHORIZED, None),
        ("tok_chargeDeclined", AuthorizationStatus.DECLINED, "card_declined"),
        ("tok_insufficientFunds", AuthorizationStatus.DECLINED, "insufficient_funds"),
    ],
)
def test_the_token_decides_the_outcome(
    token: str, status: AuthorizationStatus, code: str | None
) -> None:
    authorization = authorize(token)
    assert authorization.status is status
    assert authorization.decline_code == code
    assert authorization.id.startswith("auth_")


@pytest.mark.parametrize("token", ["tok_unknown", "", "TOK_VISA", "tok_visa "])
def test_an_unknown_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        authorize(token)


def test_capture_all_or_part_then_refund_in_parts() -> None:
    captured = authorize(amount=1000).capture(None, now=NOW)
    assert (captured.status, captured.captured_amount) == (AuthorizationStatus.CAPTURED, 1000)

    partial = authorize(amount=1000).capture(600, now=NOW)
    assert partial.captured_amount == 600
    once = partial.refund(200, now=NOW)
    assert (once.status, once.refunded_amount) == (AuthorizationStatus.CAPTURED, 200)
    twice = once.refund(None, now=NOW)
    assert (twice.status, twice.refunded_amount) == (AuthorizationStatus.REFUNDED, 600)


def test_amounts_cannot_exceed_what_is_held() -> None:
    with pytest.raises(AmountTooLargeError):
        authorize(amount=1000).capture(1001, now=NOW)
    with pytest.raises(AmountTooLargeError):
        authorize(amount=1000).capture(500, now=NOW).refund(501, now=NOW)


def test_the_status_decides_what_is_allowed() -> None:
    declined = authorize("tok_chargeDeclined")
    voided = authorize().void(now=NOW)
    captured = authorize().capture(None, now=NOW)
    refunded = captured.refund(None, now=NOW)
    for refused in (
        lambda: declined.capture(None, now=NOW),
        lambda: declined.void(now=NOW),
        lambda: voided.capture(None, now=NOW),
        lambda: voided.void(now=NOW),
        lambda: captured.void(now=NOW),
        lambda: captured.capture(None, now=NOW),
        lambda: authorize().refund(None, now=NOW),
        lambda: refunded.refund(None, now=NOW),
    ):
        with pytest.raises(InvalidStateError):
            refused()
