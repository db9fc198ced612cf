"""The checkout saga wired into the orders app: an in-memory bus, SQLite, fake inventory and
payments answering per docs/events.md, a fake catalog and a settable clock."""

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from chassis.messaging import Delivery, Envelope, InMemoryMessageBus
from orders.adapters.memory import FakeCatalog
from orders.domain.model import Price, ProductSnapshot

STEP_TIMEOUT = 15.0


@dataclass
class Shop:
    api: Any
    participants: Any
    events: defaultdict[str, list[Envelope]]
    clock: Any
    kit: Any

    async def place(self, **options: Any) -> dict[str, Any]:
        body = self.kit.order_body(token=options.pop("token", "tok_visa"))
        response = await self.api.place(body, **options)
        assert response.status_code == 202, response.text
        placed: dict[str, Any] = response.json()
        return placed

    async def saga(self, order_id: str) -> dict[str, Any]:
        admin = self.kit.principal("ops", "admin")
        listing = await self.api.client.get(f"/internal/sagas?order_id={order_id}", headers=admin)
        assert listing.status_code == 200, listing.text
        [summary] = listing.json()["items"]
        detail = await self.api.client.get(f"/internal/sagas/{summary['id']}", headers=admin)
        assert detail.status_code == 200, detail.text
        saga: dict[str, Any] = detail.json()
        return saga

    def published(self, order_id: str) -> list[str]:
        return [
            t for t, envelopes in self.events.items() for e in envelopes if e.subject == order_id
        ]


@pytest.fixture
async def shop(kit: Any, make_settings: Any, clock: Any) -> AsyncIterator[Shop]:
    bus = InMemoryMessageBus()
    await bus.start()
    participants = kit.Participants(bus)
    await participants.start()
    events: defaultdict[str, list[Envelope]] = defaultdict(list)

    async def watch(envelope: Envelope, _: Delivery) -> None:
        events[envelope.type].append(envelope)

    await bus.subscribe("watcher", ["orders.>"], watch)
    catalog = FakeCatalog(
        [
            ProductSnapshot(kit.MUG, "MUG-001", "Stoneware Mug", Price(1490, "EUR")),
            ProductSnapshot(kit.TEA, "TEA-042", "Sencha 100 g", Price(850, "EUR")),
        ]
    )
    settings = make_settings(saga_step_timeout=STEP_TIMEOUT)
    async with kit.serving(settings, bus=bus, catalog=catalog, clock=clock) as api:
        yield Shop(api, participants, events, clock, kit)


async def test_a_paid_order_is_confirmed_captured_and_committed(shop: Shop) -> None:
    placed = await shop.place()
    assert placed["status"] == "PENDING"
    order = await shop.api.settled(placed["id"], "CONFIRMED")
    assert order["reason"] is None
    await shop.kit.eventually(
        lambda: _saga_status(shop, placed["id"], "COMPLETED"),
    )
    assert shop.participants.commands(placed["id"]) == [
        "inventory.reserve_stock.v1",
        "payments.authorize_payment.v1",
        "payments.capture_payment.v1",
        "inventory.commit_stock.v1",
    ]
    reserve = shop.participants.seen["inventory.reserve_stock.v1"][0]
    assert reserve.data == {
        "order_id": placed["id"],
        "lines": [{"sku": "MUG-001", "quantity": 2}, {"sku": "TEA-042", "quantity": 1}],
    }
    authorize = shop.participants.seen["payments.authorize_payment.v1"][0]
    assert authorize.data == {
        "order_id": placed["id"],
        "user_id": "alice",
        "amount": {"amount": 2 * 1490 + 850, "currency": "EUR"},
        "payment_token": "tok_visa",
    }
    saga = await shop.saga(placed["id"])
    assert "payment_token" not in saga["data"]  # forgotten once authorized
    assert saga["data"]["payment_id"].startswith("pay-")
    assert [step["name"] for step in saga["plan"]] == [
        "reserve_stock",
        "authorize_payment",
        "confirm_order",
        "capture_payment",
        "commit_reservation",
    ]
    await shop.kit.eventually(lambda: _has(shop, placed["id"], "orders.order.confirmed.v1"))
    confirmed = shop.events["orders.order.confirmed.v1"][0]
    assert confirmed.data == {
        "order_id": placed["id"],
        "user_id": "alice",
        "total": {"amount": 3830, "currency": "EUR"},
    }


async def test_a_declined_payment_releases_the_stock_and_rejects(shop: Shop) -> None:
    placed = await shop.place(token="tok_chargeDeclined")
    order = await shop.api.settled(placed["id"], "REJECTED")
    assert order["reason"] == "payment_declined"
    assert shop.participants.commands(placed["id"]) == [
        "inventory.reserve_stock.v1",
        "payments.authorize_payment.v1",
        "inventory.release_stock.v1",
    ]
    saga = await shop.saga(placed["id"])
    assert saga["status"] == "COMPENSATED"
    assert saga["data"]["payment_token"] == "[redacted]"
    assert saga["failure"]["step"] == "authorize_payment"
    await shop.kit.eventually(lambda: _has(shop, placed["id"], "orders.order.rejected.v1"))
    assert shop.events["orders.order.rejected.v1"][0].data["reason"] == "payment_declined"


async def test_no_stock_rejects_without_touching_payments(shop: Shop) -> None:
    shop.participants.out_of_stock.add("TEA-042")
    placed = await shop.place()
    order = await shop.api.settled(placed["id"], "REJECTED")
    assert order["reason"] == "out_of_stock"
    assert shop.participants.commands(placed["id"]) == ["inventory.reserve_stock.v1"]


async def test_cancelling_while_pending_compensates_instead_of_confirming(shop: Shop) -> None:
    shop.participants.hold.add("payments.authorize_payment.v1")
    placed = await shop.place()
    await shop.kit.eventually(lambda: _seen(shop, "payments.authorize_payment.v1", placed["id"]))
    cancel = await shop.api.client.post(
        f"/api/v1/orders/{placed['id']}/cancel", headers=shop.kit.principal("alice")
    )
    assert cancel.status_code == 202, cancel.text
    assert (cancel.json()["status"], cancel.json()["cancellation"]) == ("PENDING", "requested")
    shop.participants.release()  # the payment is authorized after all

    order = await shop.api.settled(placed["id"], "CANCELLED")
    assert order["reason"] == "cancelled"
    assert shop.participants.commands(placed["id"]) == [
        "inventory.reserve_stock.v1",
        "payments.authorize_payment.v1",
        "payments.void_payment.v1",
        "inventory.release_stock.v1",
    ]
    await shop.kit.eventually(lambda: _has(shop, placed["id"], "orders.order.cancelled.v1"))
    assert "orders.order.confirmed.v1" not in shop.published(placed["id"])


async def test_a_step_that_times_out_rejects_the_order(shop: Shop) -> None:
    shop.participants.silent["payments.authorize_payment.v1"] = 1
    placed = await shop.place()
    await shop.kit.eventually(lambda: _seen(shop, "payments.authorize_payment.v1", placed["id"]))
    shop.clock.advance(STEP_TIMEOUT + 1)  # the orchestrator's loop notices
    order = await shop.api.settled(placed["id"], "REJECTED")
    assert order["reason"] == "timeout"
    # the authorization may have happened: voided too, before the stock is released
    assert shop.participants.commands(placed["id"])[-2:] == [
        "payments.void_payment.v1",
        "inventory.release_stock.v1",
    ]


async def test_a_lost_capture_is_reissued_until_it_succeeds(shop: Shop) -> None:
    shop.participants.silent["payments.capture_payment.v1"] = 1
    placed = await shop.place()
    await shop.api.settled(placed["id"], "CONFIRMED")
    await shop.kit.eventually(lambda: _seen(shop, "payments.capture_payment.v1", placed["id"]))
    shop.clock.advance(STEP_TIMEOUT + 1)
    await shop.kit.eventually(lambda: _saga_status(shop, placed["id"], "COMPLETED"))
    assert shop.participants.count("payments.capture_payment.v1", placed["id"]) == 2


async def test_cancelling_a_confirmed_order_refunds_restocks_and_cancels(shop: Shop) -> None:
    placed = await shop.place()
    await shop.api.settled(placed["id"], "CONFIRMED")
    cancel = await shop.api.client.post(
        f"/api/v1/orders/{placed['id']}/cancel", headers=shop.kit.principal("alice")
    )
    assert cancel.status_code == 202
    order = await shop.api.settled(placed["id"], "CANCELLED")
    assert order["reason"] == "cancelled"
    requested = shop.participants.seen["orders.order.cancellation_requested.v1"][0]
    assert requested.data["lines"] == [
        {"sku": "MUG-001", "quantity": 2},
        {"sku": "TEA-042", "quantity": 1},
    ]
    await shop.kit.eventually(lambda: _has(shop, placed["id"], "orders.order.cancelled.v1"))
    again = await shop.api.client.post(
        f"/api/v1/orders/{placed['id']}/cancel", headers=shop.kit.principal("alice")
    )
    assert again.status_code == 409


async def test_a_cancellation_during_the_capture_waits_for_the_checkout_to_end(
    shop: Shop,
) -> None:
    shop.participants.hold.add("payments.capture_payment.v1")
    placed = await shop.place()
    await shop.api.settled(placed["id"], "CONFIRMED")
    await shop.kit.eventually(lambda: _seen(shop, "payments.capture_payment.v1", placed["id"]))
    cancel = await shop.api.client.post(
        f"/api/v1/orders/{placed['id']}/cancel", headers=shop.kit.principal("alice")
    )
    assert (cancel.json()["status"], cancel.json()["cancellation"]) == ("CONFIRMED", "requested")
    assert shop.participants.count("orders.order.cancellation_requested.v1", placed["id"]) == 0
    shop.participants.release()  # captured, then committed: now the refund may be asked for
    await shop.api.settled(placed["id"], "CANCELLED")
    assert shop.participants.commands(placed["id"])[-3:] == [
        "inventory.commit_stock.v1",
        "orders.order.cancellation_requested.v1",
        "payments.payment.refunded.v1",
    ]


async def test_a_failed_refund_keeps_the_order_confirmed_and_flagged(shop: Shop) -> None:
    shop.participants.refunds_fail = True
    placed = await shop.place()
    await shop.api.settled(placed["id"], "CONFIRMED")
    await shop.api.client.post(
        f"/api/v1/orders/{placed['id']}/cancel", headers=shop.kit.principal("alice")
    )

    async def flagged() -> bool:
        order = await shop.api.order(placed["id"])
        return bool(order["cancellation"] == "refund_failed")

    await shop.kit.eventually(flagged)
    assert (await shop.api.order(placed["id"]))["status"] == "CONFIRMED"


async def _saga_status(shop: Shop, order_id: str, status: str) -> bool:
    return bool((await shop.saga(order_id))["status"] == status)


async def _seen(shop: Shop, type_: str, order_id: str) -> bool:
    return shop.participants.count(type_, order_id) > 0


async def _has(shop: Shop, order_id: str, type_: str) -> bool:
    return type_ in shop.published(order_id)
