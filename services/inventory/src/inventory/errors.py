"""Inventory's errors.

chassis.errors.NotFoundError
├── UnknownSkuError            no stock record for that SKU (the product is unknown here)
└── ReservationNotFoundError   no reservation that holds stock for that order
chassis.errors.ConflictError
├── InsufficientStockError     not enough available units for the change
└── ReservationStateError      the reservation's state forbids the step
chassis.errors.InvalidInputError
└── InvalidSkusError           a SKU list that is empty, too long or malformed
RuntimeError
└── InventoryInvariantError    stored state contradicts itself (a bug or a manual edit)

A message consumer turns the domain errors into `PermanentError` (dead-lettered at once:
retrying cannot help); an invariant error is retried like any unexpected failure.
"""

from collections.abc import Sequence

from chassis.errors import ConflictError, InvalidInputError, NotFoundError

__all__ = [
    "InsufficientStockError",
    "InvalidSkusError",
    "InventoryInvariantError",
    "ReservationNotFoundError",
    "ReservationStateError",
    "UnknownSkuError",
]


class UnknownSkuError(NotFoundError):
    title = "Unknown SKU"
    slug = "unknown-sku"

    def __init__(self, sku: str) -> None:
        super().__init__(f"inventory has no stock record for sku {sku!r}", sku=sku)


class ReservationNotFoundError(NotFoundError):
    title = "Reservation not found"
    slug = "reservation-not-found"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"no reservation holds stock for order {order_id}", order_id=order_id)


class InsufficientStockError(ConflictError):
    title = "Insufficient stock"
    slug = "insufficient-stock"

    def __init__(self, detail: str, skus: Sequence[str]) -> None:
        super().__init__(detail, skus=list(skus))


class ReservationStateError(ConflictError):
    title = "Reservation state conflict"
    slug = "reservation-state"


class InvalidSkusError(InvalidInputError):
    title = "Invalid SKUs"
    slug = "invalid-skus"

    def __init__(self, message: str, *, location: str = "query", field: str = "skus") -> None:
        super().__init__(
            f"{field}: {message}",
            errors=[{"location": location, "field": field, "message": message}],
        )


class InventoryInvariantError(RuntimeError):
    """E.g. fewer units reserved than a held reservation holds. Never the client's fault;
    the transaction is rolled back and nothing is half done."""
