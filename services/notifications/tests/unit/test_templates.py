from datetime import UTC, datetime

import pytest

from notifications.domain import templates
from notifications.domain.model import Cause, NewsItem, NewsKind, NotificationKind
from notifications.domain.money import Amount

EUR = "EUR"


def test_welcome_greets_by_name() -> None:
    message = templates.welcome("Ada Lovelace", "ada@example.com")
    assert message.kind is NotificationKind.WELCOME
    assert message.title == "Welcome to Mercato, Ada Lovelace"
    assert "ada@example.com" in message.body


def test_order_messages_show_the_total_as_money() -> None:
    confirmed = templates.order_confirmed("o-1", Amount(1290, EUR))
    cancelled = templates.order_cancelled("o-1", Amount(1290, EUR))
    assert confirmed.kind is NotificationKind.ORDER_CONFIRMED
    assert "o-1" in confirmed.body
    assert "€12.90" in confirmed.body
    assert cancelled.kind is NotificationKind.ORDER_CANCELLED
    assert "€12.90" in cancelled.body


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("out_of_stock", "some items were out of stock"),
        ("payment_declined", "your card was declined"),
        ("insufficient_funds", "your card has insufficient funds"),
        ("timeout", "it could not be completed in time"),
        ("OUT_OF_STOCK", "some items were out of stock"),
        ("something_new_v7", "it could not be completed"),
    ],
)
def test_rejections_say_why_in_plain_words(reason: str, words: str) -> None:
    message = templates.order_rejected("o-9", Amount(4500, EUR), reason)
    assert message.kind is NotificationKind.ORDER_REJECTED
    assert words in message.body
    assert "€45.00" in message.body
    assert "_" not in message.body  # never a raw reason code


def news(kind: NewsKind, price: int, old: int | None, name: str | None = "Mug") -> NewsItem:
    now = datetime.now(UTC)
    return NewsItem(
        id="n",
        kind=kind,
        product_id="p",
        sku="MUG-1",
        name=name,
        category=None,
        price=Amount(price, EUR),
        old_price=Amount(old, EUR) if old is not None else None,
        cause=Cause("m", "t"),
        occurred_at=now,
        created_at=now,
    )


def test_headlines() -> None:
    assert templates.headline(news(NewsKind.PRODUCT_CREATED, 1490, None)) == "New: Mug, €14.90"
    assert (
        templates.headline(news(NewsKind.PRICE_CHANGED, 990, 1490))
        == "Price drop: Mug, now €9.90 (was €14.90)"
    )
    assert templates.headline(news(NewsKind.PRICE_CHANGED, 1990, 1490)).startswith("Price rise")
    # a product created before notifications listened: the sku stands in for the name
    assert "MUG-1" in templates.headline(news(NewsKind.PRICE_CHANGED, 990, 1490, name=None))
