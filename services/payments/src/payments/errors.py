"""Payments' errors.

chassis.errors.NotFoundError
└── PaymentNotFoundError         no payment for that order (or it is not the caller's)
PaymentProviderError             a call to the psp did not succeed (never reaches HTTP)
├── ProviderRefusedError         the psp answered no (4xx): definitive, `reason` says why
└── ProviderUnavailableError     no usable answer; `outcome_unknown` when it may have acted
"""

from chassis.errors import NotFoundError

__all__ = [
    "PaymentNotFoundError",
    "PaymentProviderError",
    "ProviderRefusedError",
    "ProviderUnavailableError",
]


class PaymentNotFoundError(NotFoundError):
    title = "Payment not found"
    slug = "payment-not-found"


class PaymentProviderError(Exception):
    """Base of the failures of a psp call."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ProviderRefusedError(PaymentProviderError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class ProviderUnavailableError(PaymentProviderError):
    def __init__(self, detail: str, *, outcome_unknown: bool) -> None:
        super().__init__(detail)
        self.outcome_unknown = outcome_unknown
