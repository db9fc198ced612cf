"""Authorizations as a card provider keeps them, and the rules of capture, void and refund.

Stripe's test tokens decide the outcome of an authorization: `tok_visa` approves,
`tok_chargeDeclined` and `tok_insufficientFunds` decline; any other token is refused
outright. A declined authorization is still recorded (a provider keeps failed charges).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from psp.errors import AmountTooLargeError, InvalidStateError, InvalidTokenError

__all__ = [
    "DECLINE_CODES",
    "Authorization",
    "AuthorizationStatus",
    "new_authorization",
]

# token → decline code (None approves)
DECLINE_CODES: dict[str, str | None] = {
    "tok_visa": None,
    "tok_chargeDeclined": "card_declined",
    "tok_insufficientFunds": "insufficient_funds",
}


class AuthorizationStatus(StrEnum):
    AUTHORIZED = "authorized"
    DECLINED = "declined"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"  # fully refunded; a partial refund stays `captured`


@dataclass(frozen=True)
class Authorization:
    id: str
    idempotency_key: str  # the key of the request that created it (for reconciliation)
    reference: str  # the merchant's reference, e.g. an order id
    token: str
    amount: int  # integer minor units
    currency: str
    status: AuthorizationStatus
    decline_code: str | None
    captured_amount: int
    refunded_amount: int
    created_at: datetime
    updated_at: datetime

    def capture(self, amount: int | None, *, now: datetime) -> Authorization:
        """Capture `amount` (default: all of it); the rest of the hold is released."""
        self._require(AuthorizationStatus.AUTHORIZED, "capture")
        amount = self.amount if amount is None else amount
        if amount > self.amount:
            raise AmountTooLargeError(
                f"cannot capture {amount}: only {self.amount} is authorized",
                authorized=self.amount,
            )
        return replace(
            self, status=AuthorizationStatus.CAPTURED, captured_amount=amount, updated_at=now
        )

    def void(self, *, now: datetime) -> Authorization:
        """Release the whole hold; nothing was captured."""
        self._require(AuthorizationStatus.AUTHORIZED, "void")
        return replace(self, status=AuthorizationStatus.VOIDED, updated_at=now)

    def refund(self, amount: int | None, *, now: datetime) -> Authorization:
        """Give back `amount` of what was captured (default: all that is left)."""
        self._require(AuthorizationStatus.CAPTURED, "refund")
        refundable = self.captured_amount - self.refunded_amount
        amount = refundable if amount is None else amount
        if amount > refundable:
            raise AmountTooLargeError(
                f"cannot refund {amount}: only {refundable} is left to refund",
                refundable=refundable,
            )
        refunded = self.refunded_amount + amount
        status = (
            AuthorizationStatus.REFUNDED
            if refunded == self.captured_amount
            else AuthorizationStatus.CAPTURED
        )
        return replace(self, status=status, refunded_amount=refunded, updated_at=now)

    def _require(self, status: AuthorizationStatus, operation: str) -> None:
        if self.status is not status:
            raise InvalidStateError(
                f"cannot {operation} an authorization that is {self.status.value}",
                status=self.status.value,
            )


def new_authorization(
    *,
    idempotency_key: str,
    reference: str,
    token: str,
    amount: int,
    currency: str,
    now: datetime,
) -> Authorization:
    """Authorize `amount` on the card behind `token`: approved or declined, by the token."""
    if token not in DECLINE_CODES:
        raise InvalidTokenError(f"no such token: {token!r}", code="invalid_token")
    decline_code = DECLINE_CODES[token]
    return Authorization(
        id=f"auth_{uuid.uuid4().hex}",
        idempotency_key=idempotency_key,
        reference=reference,
        token=token,
        amount=amount,
        currency=currency,
        status=AuthorizationStatus.DECLINED if decline_code else AuthorizationStatus.AUTHORIZED,
        decline_code=decline_code,
        captured_amount=0,
        refunded_amount=0,
        created_at=now,
        updated_at=now,
    )
