"""Notifications' own schema of each consumed event: accepts newer minors, refuses garbage."""

from typing import Any

import pytest

from chassis.messaging import Envelope, MalformedMessageError
from notifications.entrypoints.events import (
    CONSUMED_TYPES,
    OrderRejected,
    ProductPriceChanged,
    UserRegistered,
    parse,
)

REGISTERED = "identity.user.registered.v1"
CONFIRMED = "orders.order.confirmed.v1"
CHANGED = "catalog.product.price_changed.v1"
MONEY = {"amount": 1290, "currency": "EUR"}
VALID: dict[str, dict[str, Any]] = {
    "identity.user.registered.v1": {"user_id": "u-1", "email": "ada@example.com", "name": "Ada"},
    "orders.order.confirmed.v1": {"order_id": "o-1", "user_id": "u-1", "total": MONEY},
    "orders.order.rejected.v1": {
        "order_id": "o-1",
        "user_id": "u-1",
        "total": MONEY,
        "reason": "out_of_stock",
    },
    "orders.order.cancelled.v1": {"order_id": "o-1", "user_id": "u-1", "total": MONEY},
    "catalog.product.created.v1": {
        "product_id": "p-1",
        "sku": "MUG-1",
        "name": "Mug",
        "category": "kitchen",
        "price": MONEY,
    },
    "catalog.product.price_changed.v1": {
        "product_id": "p-1",
        "sku": "MUG-1",
        "old_price": MONEY,
        "new_price": {"amount": 990, "currency": "EUR"},
    },
}


def envelope(type_: str, data: Any) -> Envelope:
    return Envelope(type=type_, source="tests", subject="s", data=data)


def test_every_consumed_type_has_a_schema_and_an_example() -> None:
    assert set(CONSUMED_TYPES) == set(VALID)


@pytest.mark.parametrize("type_", sorted(VALID))
def test_valid_events_parse(type_: str) -> None:
    parse(envelope(type_, VALID[type_]))


@pytest.mark.parametrize("type_", sorted(VALID))
def test_a_newer_minor_version_with_extra_fields_is_accepted(type_: str) -> None:
    data = {
        **VALID[type_],
        "added_in_v1_3": {"nested": [1, 2, 3]},
        "locale": "de-DE",
    }
    for value in data.values():
        if isinstance(value, dict) and "amount" in value:
            value["minor_unit_exponent"] = 2  # extra fields inside nested objects too
    parse(envelope(type_, data))


def test_parsed_values_are_the_ones_sent() -> None:
    event = parse(envelope("orders.order.rejected.v1", VALID["orders.order.rejected.v1"]))
    assert isinstance(event, OrderRejected)
    assert event.total.to_amount().amount == 1290
    assert event.reason == "out_of_stock"
    changed = parse(envelope(CHANGED, VALID[CHANGED]))
    assert isinstance(changed, ProductPriceChanged)
    assert str(changed.new_price.to_amount()) == "€9.90"


def with_(type_: str, **changes: Any) -> tuple[str, dict[str, Any]]:
    data = {**VALID[type_], **changes}
    return type_, {k: v for k, v in data.items() if v is not ...}


@pytest.mark.parametrize(
    ("type_", "data"),
    [
        with_(REGISTERED, user_id=...),
        with_(REGISTERED, name=...),
        with_(REGISTERED, name=""),
        with_(REGISTERED, name="   "),
        with_(REGISTERED, name="x" * 201),
        with_(REGISTERED, name="nul\x00byte"),
        with_(REGISTERED, name="two\nlines"),
        with_(REGISTERED, name="lone \ud800 surrogate"),
        with_(REGISTERED, name=42),
        with_(REGISTERED, email="not-an-address"),
        with_(REGISTERED, user_id="u" * 65),
        with_(REGISTERED, user_id=None),
        with_(CONFIRMED, total={"amount": 12.9, "currency": "EUR"}),
        with_(CONFIRMED, total={"amount": "1290", "currency": "EUR"}),
        with_(CONFIRMED, total={"amount": -1, "currency": "EUR"}),
        with_(CONFIRMED, total={"amount": 10**30, "currency": "EUR"}),
        with_(CONFIRMED, total={"amount": 1290, "currency": "euro"}),
        with_(CONFIRMED, total={"amount": 1290}),
        with_(CONFIRMED, total=1290),
        with_(CONFIRMED, total=...),
        with_("orders.order.rejected.v1", reason=...),
        with_("catalog.product.created.v1", price=...),
        with_(CHANGED, old_price=...),
        (CONFIRMED, {}),
        (CONFIRMED, {"garbage": True}),
    ],
)
def test_garbage_is_malformed(type_: str, data: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessageError):
        parse(envelope(type_, data))


def test_a_type_notifications_does_not_consume_is_malformed() -> None:
    with pytest.raises(MalformedMessageError, match="does not consume"):
        parse(envelope("identity.user.registered.v2", VALID[REGISTERED]))


def test_the_error_names_fields_but_never_echoes_values() -> None:
    data = {**VALID[REGISTERED], "email": "secret-person-at-example.com"}
    with pytest.raises(MalformedMessageError) as caught:
        parse(envelope(REGISTERED, data))
    assert "email" in str(caught.value)
    assert "secret-person" not in str(caught.value)


def test_text_is_trimmed() -> None:
    event = parse(envelope(REGISTERED, {**VALID[REGISTERED], "name": "  Ada  "}))
    assert isinstance(event, UserRegistered)
    assert event.name == "Ada"
