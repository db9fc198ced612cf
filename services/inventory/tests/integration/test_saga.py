"""Inventory as a saga participant, through a bus (in memory) and its inbox and outbox, on
SQLite and PostgreSQL: each command answered as docs/events.md says, in the transaction of
its stock change, idempotent by message id and by order id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from prometheus_client import REGISTRY

from inventory.adapters.memory import FakeClock

if TYPE_CHECKING:  # conftest is pytest's, not importable at run time
    from conftest import Harness, HarnessFactory

RESERVE = "inventory.reserve_stock.v1"
RELEASE = "inventory.release_stock.v1"
COMMIT = "inventory.commit_stock.v1"
REFUNDED = "payments.payment.refunded.v1"


@pytest.fixture
async def shop(start_harness: HarnessFactory, database_url: str) -> AsyncIterator[Harness]:
    async with start_harness(database_url=database_url, initial_stock=5) as harness:
        await harness.product("A")
        await harness.product("B")
        yield harness


def lines(*pairs: tuple[str, int]) -> list[dict[str, object]]:
    return [{"sku": sku, "quantity": quantity} for sku, quantity in pairs]


async def test_reserve_answers_reserved_with_the_commands_correlation(shop: Harness) -> None:
    command = await shop.send(RESERVE, {"order_id": "o1", "lines": lines(("A", 2), ("B", 1))})
    reply = await shop.reply(command)
    assert reply.type == "inventory.stock.reserved.v1"
    assert reply.source == "inventory"
    assert reply.subject == "o1"
    assert reply.correlation_id == command.correlation_id == "corr-o1"
    assert reply.causation_id == command.id
    assert set(reply.data) == {"order_id", "reservation_id", "expires_at"}
    assert reply.data["order_id"] == "o1"
    assert reply.data["expires_at"] == "2026-12-01T12:15:00Z"
    assert await shop.level("A") == (3, 2, 0)
    assert await shop.level("B") == (4, 1, 0)


async def test_reserve_fails_out_of_stock_or_unknown_sku_holding_nothing(shop: Harness) -> None:
    short = await shop.command(RESERVE, {"order_id": "o1", "lines": lines(("A", 1), ("B", 6))})
    assert short.type == "inventory.stock.reservation_failed.v1"
    assert short.data == {"order_id": "o1", "reason": "out_of_stock", "skus": ["B"]}
    unknown = await shop.command(RESERVE, {"order_id": "o2", "lines": lines(("A", 1), ("Z", 1))})
    assert unknown.data == {"order_id": "o2", "reason": "unknown_sku", "skus": ["Z"]}
    assert await shop.level("A") == (5, 0, 0)
    assert await shop.level("B") == (5, 0, 0)


async def test_a_redelivered_command_is_applied_and_answered_once(shop: Harness) -> None:
    command = await shop.send(RESERVE, {"order_id": "o1", "lines": lines(("A", 2))})
    await shop.reply(command)
    await shop.bus.publish(command)  # the same envelope again: the inbox absorbs it
    again = await shop.command(RESERVE, {"order_id": "o2", "lines": lines(("A", 1))})
    assert again.type == "inventory.stock.reserved.v1"
    assert [r.causation_id for r in shop.replies].count(command.id) == 1
    assert await shop.level("A") == (2, 3, 0)


async def test_a_reissued_command_gets_the_same_answer_and_changes_nothing(shop: Harness) -> None:
    first = await shop.command(RESERVE, {"order_id": "o1", "lines": lines(("A", 2))})
    second = await shop.command(RESERVE, {"order_id": "o1", "lines": lines(("A", 2))})
    assert second.data == first.data
    assert await shop.level("A") == (3, 2, 0)
    failed = await shop.command(RESERVE, {"order_id": "o2", "lines": lines(("B", 9))})
    await shop.client.put(
        "/api/v1/inventory/stock/B",
        json={"action": "restock", "quantity": 10},
        headers=shop.headers("admin"),
    )
    assert (await shop.command(RESERVE, {"order_id": "o2", "lines": lines(("B", 9))})).data == (
        failed.data
    )


async def test_release_compensates_and_is_idempotent_even_without_a_reservation(
    shop: Harness,
) -> None:
    await shop.command(RESERVE, {"order_id": "o1", "lines": lines(("A", 2))})
    for _ in range(2):
        released = await shop.command(RELEASE, {"order_id": "o1"})
        assert released.type == "inventory.stock.released.v1"
        assert released.data == {"order_id": "o1", "reason": "compensation"}
        assert await shop.level("A") == (5, 0, 0)
    absent = await shop.command(RELEASE, {"order_id": "never-reserved"})
    assert absent.data == {"order_id": "never-reserved", "reason": "compensation"}
    audit = await shop.audit()
    assert {r["order_id"]: r["status"] for r in audit["reservations"]} == {
        "o1": "released",
        "never-reserved": "released",
    }


async def test_commit_sells_the_reserved_units_once(shop: Harness) -> None:
    await shop.command(RESERVE, {"order_id": "o1", "lines": lines(("A", 2), ("B", 3))})
    for _ in range(2):
        committed = await shop.command(COMMIT, {"order_id": "o1"})
        assert committed.type == "inventory.stock.committed.v1"
        assert committed.data == {"order_id": "o1"}
    assert await shop.level("A") == (3, 0, 2)
    assert await shop.level("B") == (2, 0, 3)
    [reservation] = (await shop.audit())["reservations"]
    assert reservation["status"] == "committed"


async def test_a_refund_puts_committed_units_back_on_sale_once(shop: Harness) -> None:
    await shop.command(RESERVE, {"order_id": "o1", "lines": lines(("A", 2))})
    await shop.command(COMMIT, {"order_id": "o1"})
    for _ in range(2):
        released = await shop.command(
            REFUNDED, {"order_id": "o1", "amount": {"amount": 2000, "currency": "EUR"}}
        )
        assert released.type == "inventory.stock.released.v1"
        assert released.data == {"order_id": "o1", "reason": "cancelled"}
        assert released.subject == "o1"
    assert await shop.level("A") == (5, 0, 0)


async def test_unfinished_reservations_expire_and_a_late_commit_takes_the_units_again(
    shop: Harness, clock: FakeClock
) -> None:
    def expiries() -> float:
        return REGISTRY.get_sample_value("mercato_reservation_expiries_total") or 0.0

    before = expiries()
    await shop.command(RESERVE, {"order_id": "slow", "lines": lines(("A", 2))})
    await shop.command(RESERVE, {"order_id": "paid", "lines": lines(("A", 1))})
    await shop.command(COMMIT, {"order_id": "paid"})
    clock.advance(minutes=15)
    async with asyncio.timeout(5):
        while (await shop.level("A"))[1] != 0:
            await asyncio.sleep(0.02)
    assert await shop.level("A") == (4, 0, 1)
    assert expiries() == before + 1
    statuses = {r["order_id"]: r["status"] for r in (await shop.audit())["reservations"]}
    assert statuses == {"slow": "expired", "paid": "committed"}
    late = await shop.command(RESERVE, {"order_id": "slow", "lines": lines(("A", 2))})
    assert late.data == {"order_id": "slow", "reason": "expired", "skus": ["A"]}
    assert (await shop.command(COMMIT, {"order_id": "slow"})).type == "inventory.stock.committed.v1"
    assert await shop.level("A") == (2, 0, 3)


async def test_messages_that_cannot_be_handled_are_dead_lettered_without_effect(
    shop: Harness,
) -> None:
    bad = [
        await shop.send(RESERVE, {"order_id": "o1", "lines": []}),
        await shop.send(RESERVE, {"order_id": "o2", "lines": lines(("A", 0))}),
        await shop.send(RESERVE, {"order_id": "o3", "lines": [{"sku": "A"}]}),
        await shop.send(RESERVE, {"lines": lines(("A", 1))}, subject="o4"),
        await shop.send(RELEASE, {"order_id": ""}, subject="o5"),
        await shop.send(COMMIT, {"order_id": "never-reserved"}),
        await shop.send("catalog.product.created.v1", {"product_id": "p", "sku": "bad sku"}),
    ]
    async with asyncio.timeout(5):
        while len(await shop.bus.dead_letters(consumer="inventory")) < len(bad):
            await asyncio.sleep(0.02)
    letters = await shop.bus.dead_letters(consumer="inventory")
    assert {letter.envelope.id for letter in letters if letter.envelope} == {b.id for b in bad}
    reasons = {letter.envelope.subject: letter.reason for letter in letters if letter.envelope}
    assert "Reservation not found" in reasons["never-reserved"]
    assert "does not fit its schema" in reasons["o1"]
    assert shop.replies == []
    assert await shop.level("A") == (5, 0, 0)
