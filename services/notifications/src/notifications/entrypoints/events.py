"""The events notifications consumes, as notifications reads them (its own schema of each).

The contracts are in docs/events.md; these models hold only what notifications uses, and
each producer stays free to add fields in a newer minor version (extra fields are ignored).
An event whose `data` does not fit is malformed: `parse` raises `MalformedMessageError`,
and the bus dead-letters it at once rather than retrying what can never succeed.

Text limits match the columns the values land in (adapters/orm.py) and refuse what a
database or a mail body cannot hold (NUL, other control characters, lone surrogates).
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
)

from chassis import clean_text
from chassis.messaging import Envelope, MalformedMessageError
from notifications.domain.money import Amount

__all__ = [
    "CONSUMED_TYPES",
    "ConsumedEvent",
    "OrderCancelled",
    "OrderConfirmed",
    "OrderRejected",
    "ProductCreated",
    "ProductPriceChanged",
    "UserRegistered",
    "parse",
]

USER_REGISTERED: Final = "identity.user.registered.v1"
ORDER_CONFIRMED: Final = "orders.order.confirmed.v1"
ORDER_REJECTED: Final = "orders.order.rejected.v1"
ORDER_CANCELLED: Final = "orders.order.cancelled.v1"
PRODUCT_CREATED: Final = "catalog.product.created.v1"
PRODUCT_PRICE_CHANGED: Final = "catalog.product.price_changed.v1"


# The most a total can be (as the chassis's Money): bigger is a bug upstream, not a sale.
MAX_AMOUNT: Final = 10**12


_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]")


def _one_line(value: str) -> str:
    if _LINE_BREAKS.search(value):
        raise ValueError("must be a single line")
    return value


def _length(max_length: int) -> StringConstraints:
    # Trimmed, then counted: these constraints come before the checks in each type below.
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


_CLEAN = AfterValidator(clean_text)  # no NUL or other control characters, no lone surrogates
_ONE_LINE = AfterValidator(_one_line)

Id = Annotated[str, _length(64), _CLEAN, _ONE_LINE]
Name = Annotated[str, _length(200), _CLEAN, _ONE_LINE]
Email = Annotated[str, _length(320), _CLEAN, _ONE_LINE, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
Sku = Annotated[str, _length(64), _CLEAN, _ONE_LINE]
Category = Annotated[str, _length(50), _CLEAN, _ONE_LINE]
Reason = Annotated[str, _length(200), _CLEAN]


class _Data(BaseModel):
    # ignore, not forbid: a newer minor version of the contract may add fields.
    model_config = ConfigDict(extra="ignore", frozen=True)


class MoneyData(_Data):
    """`{"amount": <integer minor units>, "currency": "EUR"}`: never a float, never a string."""

    amount: StrictInt = Field(ge=0, le=MAX_AMOUNT)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]

    def to_amount(self) -> Amount:
        return Amount(self.amount, self.currency)


class UserRegistered(_Data):
    user_id: Id
    email: Email
    name: Name


class OrderConfirmed(_Data):
    order_id: Id
    user_id: Id
    total: MoneyData


class OrderRejected(_Data):
    order_id: Id
    user_id: Id
    total: MoneyData
    reason: Reason


class OrderCancelled(_Data):
    order_id: Id
    user_id: Id
    total: MoneyData


class ProductCreated(_Data):
    product_id: Id
    sku: Sku
    name: Name
    category: Category
    price: MoneyData


class ProductPriceChanged(_Data):
    product_id: Id
    sku: Sku
    old_price: MoneyData
    new_price: MoneyData


ConsumedEvent = (
    UserRegistered
    | OrderConfirmed
    | OrderRejected
    | OrderCancelled
    | ProductCreated
    | ProductPriceChanged
)

SCHEMAS: Final[dict[str, type[ConsumedEvent]]] = {
    USER_REGISTERED: UserRegistered,
    ORDER_CONFIRMED: OrderConfirmed,
    ORDER_REJECTED: OrderRejected,
    ORDER_CANCELLED: OrderCancelled,
    PRODUCT_CREATED: ProductCreated,
    PRODUCT_PRICE_CHANGED: ProductPriceChanged,
}
CONSUMED_TYPES: Final = tuple(SCHEMAS)


def parse(envelope: Envelope) -> ConsumedEvent:
    """The envelope's `data` under notifications' schema of its type, or MalformedMessageError.

    The error names the fields that failed, never their values (they may be personal data).
    """
    schema = SCHEMAS.get(envelope.type)
    if schema is None:
        raise MalformedMessageError(f"notifications does not consume {envelope.type}")
    try:
        return schema.model_validate(envelope.data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'data'}: {item['msg']}"
            for item in error.errors(include_url=False, include_input=False)
        )
        raise MalformedMessageError(f"{envelope.type} {envelope.id}: {problems}") from None
