"""The words: what each notification and news item says, in plain text."""

from __future__ import annotations

from notifications.domain.model import Message, NewsItem, NewsKind, NotificationKind
from notifications.domain.money import Amount

__all__ = [
    "REJECTION_REASONS",
    "headline",
    "order_cancelled",
    "order_confirmed",
    "order_rejected",
    "rejection_reason",
    "welcome",
]

# Why orders rejected an order, in words a shopper understands. Codes not listed here
# (a newer orders may add some) get the generic phrase rather than the raw code.
REJECTION_REASONS = {
    "out_of_stock": "some items were out of stock",
    "insufficient_stock": "some items were out of stock",
    "payment_declined": "your card was declined",
    "card_declined": "your card was declined",
    "insufficient_funds": "your card has insufficient funds",
    "payment_failed": "the payment could not be processed",
    "timeout": "it could not be completed in time",
    "product_unavailable": "some items are no longer available",
    "unknown_product": "some items are no longer available",
}
_SOME_REASON = "it could not be completed"

_SIGN_OFF = "\n\nThe Mercato team"


def rejection_reason(code: str) -> str:
    return REJECTION_REASONS.get(code.strip().lower(), _SOME_REASON)


def welcome(name: str, email: str) -> Message:
    return Message(
        NotificationKind.WELCOME,
        f"Welcome to Mercato, {name}",
        f"Hello {name},\n\nyour Mercato account ({email}) is ready. Browse the catalog, "
        "fill your basket and check out whenever you like." + _SIGN_OFF,
    )


def order_confirmed(order_id: str, total: Amount) -> Message:
    return Message(
        NotificationKind.ORDER_CONFIRMED,
        "Your order is confirmed",
        f"Good news: your order {order_id} is confirmed. Total: {total}.\n"
        "We are getting it ready." + _SIGN_OFF,
    )


def order_rejected(order_id: str, total: Amount, reason: str) -> Message:
    return Message(
        NotificationKind.ORDER_REJECTED,
        "We could not accept your order",
        f"Sorry, we could not accept your order {order_id} ({total}): "
        f"{rejection_reason(reason)}.\nYou have not been charged." + _SIGN_OFF,
    )


def order_cancelled(order_id: str, total: Amount) -> Message:
    return Message(
        NotificationKind.ORDER_CANCELLED,
        "Your order was cancelled",
        f"Your order {order_id} ({total}) has been cancelled.\n"
        "If you were charged, the full amount is refunded to your card." + _SIGN_OFF,
    )


def headline(item: NewsItem) -> str:
    """One line for the news feed: "New: Stoneware Mug, €14.90"."""
    what = item.name or item.sku
    if item.kind is NewsKind.PRODUCT_CREATED or item.old_price is None:
        return f"New: {what}, {item.price}"
    same_currency = item.old_price.currency == item.price.currency
    if same_currency and item.price.amount < item.old_price.amount:
        change = "Price drop"
    elif same_currency and item.price.amount > item.old_price.amount:
        change = "Price rise"
    else:
        change = "New price"
    return f"{change}: {what}, now {item.price} (was {item.old_price})"
