"""Orders' errors.

chassis.errors.NotFoundError
└── OrderNotFoundError            no such order, or not the caller's (the same answer)
chassis.errors.ConflictError
├── OrderNotCancellableError      the order is rejected or cancelled already
└── OrderChangedError             someone else changed the order meanwhile (retry)
chassis.errors.InvalidInputError
├── DuplicateProductError         two lines name the same product
├── UnknownProductError           catalog does not know a product of the order
├── MixedCurrencyError            the products are priced in more than one currency
├── OrderTooLargeError            the total exceeds what one order may cost
├── InvalidIdempotencyKeyError    the Idempotency-Key header is malformed
└── IdempotencyKeyReusedError     the key was used before with a different request
chassis.errors.PreconditionFailedError
└── IdempotencyKeyMissingError    POST /orders needs an Idempotency-Key header (428)
chassis.errors.TooManyRequestsError
├── TooManyPendingOrdersError     too many PENDING orders; `retry_after` seconds
└── CheckoutBusyError             the checkouts in flight are behind: load shed (429, not a
                                  503, so callers neither retry it elsewhere nor count it
                                  against the instance's health)
chassis.errors.MercatoError
└── CatalogUnavailableError       catalog could not answer; the API maps it to 503

Details never carry a payment token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chassis.errors import (
    ConflictError,
    InvalidInputError,
    MercatoError,
    NotFoundError,
    PreconditionFailedError,
    TooManyRequestsError,
)

__all__ = [
    "CatalogUnavailableError",
    "CheckoutBusyError",
    "DuplicateProductError",
    "IdempotencyKeyMissingError",
    "IdempotencyKeyReusedError",
    "InvalidIdempotencyKeyError",
    "MixedCurrencyError",
    "OrderChangedError",
    "OrderNotCancellableError",
    "OrderNotFoundError",
    "OrderTooLargeError",
    "TooManyPendingOrdersError",
    "UnknownProductError",
]


class OrderNotFoundError(NotFoundError):
    title = "Order not found"
    slug = "order-not-found"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"no order with id {order_id!r}")


class OrderNotCancellableError(ConflictError):
    title = "Order cannot be cancelled"
    slug = "order-not-cancellable"

    def __init__(self, status: str) -> None:
        super().__init__(f"the order is {status} and can no longer be cancelled", status=status)


class OrderChangedError(ConflictError):
    title = "Order changed"
    slug = "order-changed"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} changed meanwhile; try again")


def _line_errors(fields: Sequence[tuple[int, str]], message: str) -> list[dict[str, Any]]:
    return [
        {"location": "body", "field": f"items.{index}.product_id", "message": message}
        for index, _ in fields
    ]


class DuplicateProductError(InvalidInputError):
    title = "Duplicate product"
    slug = "duplicate-product"

    def __init__(self, lines: Sequence[tuple[int, str]]) -> None:
        ids = sorted({product_id for _, product_id in lines})
        super().__init__(
            f"each product may appear on one line only; repeated: {', '.join(ids)}",
            product_ids=ids,
            errors=_line_errors(lines, "product appears on more than one line"),
        )


class UnknownProductError(InvalidInputError):
    title = "Unknown product"
    slug = "unknown-product"

    def __init__(self, lines: Sequence[tuple[int, str]]) -> None:
        ids = sorted({product_id for _, product_id in lines})
        super().__init__(
            f"no such product: {', '.join(ids)}",
            product_ids=ids,
            errors=_line_errors(lines, "no such product"),
        )


class MixedCurrencyError(InvalidInputError):
    title = "Mixed currencies"
    slug = "mixed-currencies"

    def __init__(self, currencies: Sequence[str]) -> None:
        super().__init__(
            "an order is paid in one currency; these products are priced in "
            + ", ".join(sorted(set(currencies))),
            currencies=sorted(set(currencies)),
        )


class OrderTooLargeError(InvalidInputError):
    title = "Order too large"
    slug = "order-too-large"


class InvalidIdempotencyKeyError(InvalidInputError):
    title = "Invalid Idempotency-Key"
    slug = "invalid-idempotency-key"

    def __init__(self) -> None:
        super().__init__(
            "the Idempotency-Key header must be 1-255 visible ASCII characters",
            errors=[
                {
                    "location": "header",
                    "field": "Idempotency-Key",
                    "message": "1-255 visible ASCII characters",
                }
            ],
        )


class IdempotencyKeyReusedError(InvalidInputError):
    title = "Idempotency-Key reused"
    slug = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was used for a different request; use a new key per order"
        )


class IdempotencyKeyMissingError(PreconditionFailedError):
    title = "Idempotency-Key required"
    slug = "idempotency-key-required"

    def __init__(self) -> None:
        super().__init__(
            "placing an order needs an Idempotency-Key header (e.g. a UUID), so a retry "
            "cannot order twice"
        )


class TooManyPendingOrdersError(TooManyRequestsError):
    title = "Too many pending orders"
    slug = "too-many-pending-orders"

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"you have {limit} orders still being processed; try again in {retry_after} s",
            retry_after=retry_after,
            limit=limit,
        )


class CheckoutBusyError(TooManyRequestsError):
    title = "Checkout busy"
    slug = "checkout-busy"

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(
            "too many checkouts are in progress to take yours now; nothing was ordered, "
            f"try again in {retry_after} s",
            retry_after=retry_after,
        )


class CatalogUnavailableError(MercatoError):
    title = "Catalog unavailable"
    slug = "catalog-unavailable"

    def __init__(self) -> None:
        super().__init__("prices cannot be looked up right now; try again shortly")
