"""The order's rules and life cycle, and idempotency keys, on plain values."""

from datetime import UTC, datetime, timedelta

import pytest

from orders.domain.idempotency import IdempotencyRecord, StoredResponse, check_key, fingerprint
from orders.domain.model import (
    Cancellation,
    OrderStatus,
    Price,
    ProductSnapshot,
    RequestedLine,
    new_order,
)
from orders.errors import (
    DuplicateProductError,
    IdempotencyKeyMissingError,
    IdempotencyKeyReusedError,
    InvalidIdempotencyKeyError,
    MixedCurrencyError,
    OrderNotCancellableError,
    OrderTooLargeError,
    UnknownProductError,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
MUG = ProductSnapshot("p-mug", "MUG-001", "Mug", Price(1490, "EUR"))
TEA = ProductSnapshot("p-tea", "TEA-042", "Tea", Price(850, "EUR"))
HAT = ProductSnapshot("p-hat", "HAT-007", "Hat", Price(2000, "USD"))
CATALOG = {p.id: p for p in (MUG, TEA, HAT)}


def order(*lines: tuple[str, int]):  # type: ignore[no-untyped-def]
    requested = [RequestedLine(p, q) for p, q in lines or [("p-mug", 2), ("p-tea", 1)]]
    return new_order(user_id="alice", requested=requested, products=CATALOG, now=NOW)


def test_a_new_order_is_pending_and_priced_from_the_catalog() -> None:
    made = order()
    assert made.status is OrderStatus.PENDING
    assert made.total == Price(2 * 1490 + 850, "EUR")
    assert [(line.sku, line.quantity, line.unit_price) for line in made.lines] == [
        ("MUG-001", 2, Price(1490, "EUR")),
        ("TEA-042", 1, Price(850, "EUR")),
    ]
    assert made.created_at == made.updated_at == NOW
    assert made.reason is None and made.cancellation is None


def test_lines_are_checked() -> None:
    with pytest.raises(ValueError, match="1 to 50"):
        new_order(user_id="a", requested=[], products=CATALOG)
    with pytest.raises(ValueError, match="1 to 50"):
        order(*[(f"p{n}", 1) for n in range(51)])
    with pytest.raises(ValueError, match="quantity"):
        order(("p-mug", 0))
    with pytest.raises(ValueError, match="quantity"):
        order(("p-mug", 101))
    with pytest.raises(DuplicateProductError) as duplicate:
        order(("p-mug", 1), ("p-tea", 1), ("p-mug", 2))
    assert duplicate.value.extra["product_ids"] == ["p-mug"]
    assert [e["field"] for e in duplicate.value.extra["errors"]] == [
        "items.0.product_id",
        "items.2.product_id",
    ]


def test_unknown_products_are_named() -> None:
    with pytest.raises(UnknownProductError) as unknown:
        order(("p-mug", 1), ("nope", 1), ("gone", 2))
    assert unknown.value.extra["product_ids"] == ["gone", "nope"]
    assert "gone" in unknown.value.detail and "nope" in unknown.value.detail


def test_one_currency_per_order_and_a_bounded_total() -> None:
    with pytest.raises(MixedCurrencyError) as mixed:
        order(("p-mug", 1), ("p-hat", 1))
    assert mixed.value.extra["currencies"] == ["EUR", "USD"]
    pricey = ProductSnapshot("p-gold", "GOLD", "Gold", Price(10**11, "EUR"))
    with pytest.raises(OrderTooLargeError):
        new_order(user_id="a", requested=[RequestedLine("p-gold", 11)], products={"p-gold": pricey})


def test_pending_orders_confirm_reject_or_cancel() -> None:
    later = NOW + timedelta(seconds=5)
    pending = order()
    assert pending.confirm(later).status is OrderStatus.CONFIRMED
    assert pending.confirm(later).updated_at == later
    rejected = pending.reject("out_of_stock", later)
    assert (rejected.status, rejected.reason) == (OrderStatus.REJECTED, "out_of_stock")
    assert pending.cancel(later).status is OrderStatus.CANCELLED
    with pytest.raises(ValueError):
        rejected.confirm(later)
    with pytest.raises(ValueError):
        rejected.cancel(later)
    with pytest.raises(ValueError):
        pending.confirm(later).reject("x", later)


def test_cancelling_a_pending_order_is_deferred_and_blocks_confirmation() -> None:
    asked, refund = order().request_cancellation(NOW)
    assert refund is False  # nothing to refund yet: the saga compensates instead
    assert asked.status is OrderStatus.PENDING
    assert asked.cancellation is Cancellation.REQUESTED
    with pytest.raises(ValueError):
        asked.confirm(NOW)
    again, refund = asked.request_cancellation(NOW)
    assert again is asked and refund is False
    assert asked.cancel(NOW).cancellation is None


def test_cancelling_a_confirmed_order_asks_for_a_refund_again_after_a_failure() -> None:
    confirmed, refund = order().confirm(NOW).complete_checkout(NOW)
    assert refund is False and confirmed.checkout_completed
    asked, refund = confirmed.request_cancellation(NOW)
    assert refund is True and asked.status is OrderStatus.CONFIRMED
    assert asked.request_cancellation(NOW) == (asked, False)
    failed = asked.refund_failed(NOW)
    assert failed.cancellation is Cancellation.REFUND_FAILED
    assert failed.status is OrderStatus.CONFIRMED
    retried, refund = failed.request_cancellation(NOW)
    assert refund is True and retried.cancellation is Cancellation.REQUESTED


def test_a_cancellation_asked_before_the_checkout_completes_waits_for_it() -> None:
    confirmed = order().confirm(NOW)  # payment not captured yet
    asked, refund = confirmed.request_cancellation(NOW)
    assert refund is False and asked.cancel_requested
    done, refund = asked.complete_checkout(NOW)
    assert refund is True and done.checkout_completed
    assert done.complete_checkout(NOW) == (done, False)


@pytest.mark.parametrize("status", ["reject", "cancel"])
def test_finished_orders_cannot_be_cancelled(status: str) -> None:
    done = order().reject("timeout", NOW) if status == "reject" else order().cancel(NOW)
    with pytest.raises(OrderNotCancellableError):
        done.request_cancellation(NOW)


def test_idempotency_keys_must_be_present_and_visible_ascii() -> None:
    assert check_key("2f1c-abc_DEF:9") == "2f1c-abc_DEF:9"
    for missing in (None, "", "   "):
        with pytest.raises(IdempotencyKeyMissingError):
            check_key(missing)
    for bad in ("a b", "x" * 256, "ключ", "tab\there"):
        with pytest.raises(InvalidIdempotencyKeyError):
            check_key(bad)


def test_a_key_replays_the_same_request_and_refuses_another() -> None:
    request = {"items": [{"product_id": "p", "quantity": 1}], "payment_token": "tok_visa"}
    reordered = {"payment_token": "tok_visa", "items": [{"quantity": 1, "product_id": "p"}]}
    assert fingerprint(request) == fingerprint(reordered)
    stored = StoredResponse(202, b'{"id": "o1"}', "o1")
    record = IdempotencyRecord("alice", "k1", fingerprint(request), stored, NOW)
    replayed = record.replay(fingerprint(reordered))
    assert (replayed.status, replayed.body, replayed.replayed) == (202, b'{"id": "o1"}', True)
    other = {**request, "payment_token": "tok_chargeDeclined"}
    with pytest.raises(IdempotencyKeyReusedError):
        record.replay(fingerprint(other))
