"""The services' message contracts, across services: one producer per consumed type, each
consumer's schema accepts what its producer sends (the declared example, and what the
producer's own code builds), and docs/events.md is what the contracts render.

Tests may import every service; production code never imports another service.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from chassis.messaging import MessageContracts
from chassis.saga import Command, Compensation

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

# Types docs/events.md allows more than one producer of, or none (a consumer waiting for a
# producer yet to come): none today.
SEVERAL_PRODUCERS: frozenset[str] = frozenset()
NO_PRODUCER: frozenset[str] = frozenset()
NO_CONSUMER: frozenset[str] = frozenset()


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "generate_events_doc.py"
    spec = importlib.util.spec_from_file_location("generate_events_doc", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
CONTRACTS: dict[str, MessageContracts] = {c.service: c for c in GENERATOR.load_contracts()}


def producers(type_: str) -> list[str]:
    return [name for name, c in CONTRACTS.items() if type_ in c.publishes]


def consumers(type_: str) -> list[str]:
    return [name for name, c in CONTRACTS.items() if type_ in c.consumes]


CONSUMED = sorted({t for c in CONTRACTS.values() for t in c.consumes})
PUBLISHED = sorted({t for c in CONTRACTS.values() for t in c.publishes})
PAIRS = [(t, consumer) for t in CONSUMED for consumer in consumers(t)]


def test_every_messaging_service_declares_its_contracts() -> None:
    assert set(CONTRACTS) == {
        "catalog", "identity", "inventory", "orders", "payments", "notifications",
    }  # fmt: skip


@pytest.mark.parametrize("type_", CONSUMED)
def test_every_consumed_type_has_exactly_one_producer(type_: str) -> None:
    found = producers(type_)
    if type_ in NO_PRODUCER:
        assert not found
    elif type_ in SEVERAL_PRODUCERS:
        assert len(found) > 1
    else:
        assert len(found) == 1, f"{type_} is published by {found or 'nobody'}"


@pytest.mark.parametrize("type_", PUBLISHED)
def test_every_published_type_has_a_consumer(type_: str) -> None:
    assert bool(consumers(type_)) != (type_ in NO_CONSUMER), f"nobody consumes {type_}"


@pytest.mark.parametrize(("type_", "consumer"), PAIRS)
def test_the_consumer_accepts_the_producers_example(type_: str, consumer: str) -> None:
    for producer in producers(type_):
        example = CONTRACTS[producer].publishes[type_].example
        CONTRACTS[consumer].consumes[type_].model_validate(example)


# -- what the producers' own code builds -----------------------------------------------------


def catalog_messages() -> Iterator[tuple[str, str, dict[str, Any]]]:
    from catalog.adapters.messages import to_envelope
    from catalog.domain.events import ProductCreated, ProductPriceChanged
    from catalog.domain.model import Price, new_product

    product = new_product(
        sku="MUG-001", name="Stoneware mug", description="", category="kitchen",
        price=Price(1290, "EUR"), image_url=None, now=NOW,
    )  # fmt: skip
    for event in (ProductCreated(product), ProductPriceChanged(product, Price(1490, "EUR"))):
        envelope = to_envelope(event)
        yield envelope.type, envelope.subject, envelope.data


def identity_messages() -> Iterator[tuple[str, str, dict[str, Any]]]:
    from identity.adapters.repository import user_registered
    from identity.domain.users import UserRegistered

    envelope = user_registered(UserRegistered("u-1", "ada@example.com", "Ada Lovelace", NOW))
    yield envelope.type, envelope.subject, envelope.data


def inventory_messages() -> Iterator[tuple[str, str, dict[str, Any]]]:
    from inventory.domain.events import (
        ReservationFailed,
        StockCommitted,
        StockReleased,
        StockReserved,
    )
    from inventory.entrypoints.messages import reply_of

    for answer in (
        StockReserved("o-1", "r-1", NOW + timedelta(minutes=15)),
        ReservationFailed("o-1", "out_of_stock", ("MUG-001",)),
        StockReleased("o-1", "cancelled"),
        StockCommitted("o-1"),
    ):
        type_, data = reply_of(answer)
        yield type_, answer.order_id, data


def orders_messages() -> Iterator[tuple[str, str, dict[str, Any]]]:
    from orders.domain import events
    from orders.domain.model import Price, ProductSnapshot, RequestedLine, new_order
    from orders.service_layer.checkout import checkout_data, checkout_saga

    order = new_order(
        user_id="u-1",
        requested=[RequestedLine("p-1", 2)],
        products={"p-1": ProductSnapshot("p-1", "MUG-001", "Stoneware mug", Price(1290, "EUR"))},
        now=NOW,
    )
    confirmed = order.confirm(NOW)
    yield events.ORDER_CONFIRMED, order.id, events.order_confirmed(confirmed)
    yield events.ORDER_REJECTED, order.id, events.order_rejected(order.reject("timeout", NOW))
    yield events.ORDER_CANCELLED, order.id, events.order_cancelled(confirmed.cancel(NOW))
    yield (
        events.ORDER_CANCELLATION_REQUESTED,
        order.id,
        events.cancellation_requested(confirmed),
    )
    saga = checkout_saga(
        transaction=lambda _: pytest.fail("no transaction"),
        clock=lambda: NOW,
        step_timeout=1.0,
        max_step_timeout=2.0,
    )
    data = checkout_data(order, "tok_visa")
    for step in saga.steps:
        for command in (step.action, step.compensation):
            if isinstance(command, Command | Compensation):
                yield command.type, order.id, command.build(data)


def payments_messages() -> Iterator[tuple[str, str, dict[str, Any]]]:
    from payments.domain.model import new_payment
    from payments.service_layer import messages

    payment = new_payment(
        order_id="o-1", user_id="u-1", amount=2580, currency="EUR", payment_token="tok_visa",
        cause=None, now=NOW,
    )  # fmt: skip
    for message in (
        messages.authorized(payment, None),
        messages.declined(payment, "card_declined", None),
        messages.voided("o-1", None),
        messages.captured(payment, 2580, None),
        messages.refunded(payment, 2580, None),
        messages.refund_failed("o-1", "payment_not_found", None),
    ):
        yield message.type, message.order_id, message.data


BUILT = {
    "catalog": catalog_messages,
    "identity": identity_messages,
    "inventory": inventory_messages,
    "orders": orders_messages,
    "payments": payments_messages,
}


@pytest.mark.parametrize("service", sorted(CONTRACTS))
def test_what_the_code_publishes_is_what_the_contract_declares(service: str) -> None:
    """Every declared type is built by the code, with exactly the declared fields, the
    declared subject, and data every consumer's schema accepts."""
    declared = CONTRACTS[service].publishes
    built = list(BUILT[service]()) if service in BUILT else []
    assert {type_ for type_, _, _ in built} == set(declared)
    for type_, subject, data in built:
        published = declared[type_]
        published.data.model_validate(data)
        assert set(data) == set(published.data.model_fields), f"{type_}: {sorted(data)}"
        assert subject == data[published.subject], type_
        for consumer in consumers(type_):
            schema: type[BaseModel] = CONTRACTS[consumer].consumes[type_]
            schema.model_validate(data)


def test_docs_events_md_is_generated_from_the_contracts() -> None:
    committed = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    rendered = GENERATOR.update(committed, GENERATOR.render(list(CONTRACTS.values())))
    assert committed == rendered, "docs/events.md is stale: run scripts/generate_events_doc.py"
    for type_ in (*PUBLISHED, *CONSUMED):
        assert f"`{type_}`" in committed
