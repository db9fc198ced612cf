"""The storefront in headless Chromium, on a platform started the way a user starts it: the
journeys a shopper takes (buying, a declined card, an item selling out, being throttled),
on a desktop window and on a phone-sized one, with accessibility checks on each page.

Every journey also proves that the browser logged no error, threw nothing, and asked no host
but the gateway (tests/browser/conftest.py), and saves screenshots of what it saw.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Locator, Page, expect

if TYPE_CHECKING:  # the fixtures' types, from this folder's conftest.py
    from conftest import Platform, Shop

pytestmark = [pytest.mark.system, pytest.mark.slow]

expect.set_options(timeout=20_000)


def cart_link(page: Page) -> Locator:
    return page.get_by_role("link", name=re.compile(r"^Cart"))


def search(page: Page, words: str) -> None:
    box = page.get_by_role("searchbox", name="Search products")
    box.fill(words)
    box.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Results for “{words}”")


def add_from_product_page(page: Page, product: str, quantity: int = 1) -> None:
    page.get_by_role("link", name=product, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(product)
    page.get_by_label("Quantity").fill(str(quantity))
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator(".toast", has_text=f"Added {quantity} × {product}")).to_be_visible()


def place_order(page: Page, card: str) -> None:
    cart_link(page).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your cart")
    page.get_by_label(card).check()
    page.get_by_role("button", name="Place order").click()


def test_a_shopper_registers_searches_buys_and_is_told(shop: Shop) -> None:
    page = shop.page
    shop.open()
    expect(page.get_by_role("heading", level=1)).to_have_text("All products")
    expect(page.locator(".card").first).to_be_visible()
    expect(page.get_by_test_id("stock").first).to_have_text(re.compile("In stock|Only"))
    shop.audit()
    shop.snap("catalog")

    # The keyboard alone gets around: the skip link comes first and lands on the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    kitchen = page.get_by_role("navigation", name="Categories").get_by_role(
        "link", name=re.compile(r"^Kitchen\W+\d+ products$")
    )
    kitchen.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Kitchen")
    expect(kitchen).to_have_attribute("aria-current", "page")

    email = shop.register("Ada")

    search(page, "lamp")
    expect(page.get_by_role("link", name="Ceramic Table Lamp")).to_be_visible()
    expect(page.get_by_test_id("result-count")).to_have_text(re.compile(r"Showing \d+ product"))
    shop.audit()
    shop.snap("search")

    # Opened from the keyboard, added to the cart from the keyboard.
    page.get_by_role("link", name="Ceramic Table Lamp").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ceramic Table Lamp")
    expect(page.get_by_test_id("stock")).to_have_text("In stock")
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".toast", has_text="Added 2 × Ceramic Table Lamp")).to_be_visible()
    expect(cart_link(page)).to_have_accessible_name("Cart, 2 items")
    expect(page.get_by_test_id("in-cart")).to_have_text("You have 2 in your cart.")
    shop.audit()
    shop.snap("product")

    cart_link(page).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your cart")
    expect(page.get_by_test_id("cart-total")).to_have_text("€178.00")
    shop.audit()
    shop.snap("cart")

    # The order page must follow the saga without a reload: this marker would not survive one.
    page.evaluate("window.sameDocument = true")
    page.get_by_label("Test Visa card, approved").check()
    page.get_by_role("button", name="Place order").click()
    expect(page).to_have_url(re.compile(r"#/orders/[0-9a-f-]+$"))
    status = page.get_by_test_id("order-status")
    expect(status).to_have_text("Confirmed")
    assert page.evaluate("window.sameDocument") is True
    expect(page.get_by_test_id("order-explanation")).to_contain_text("Your order is confirmed")
    expect(page.locator(".facts")).to_contain_text("Charged€178.00")
    expect(cart_link(page)).to_have_accessible_name("Cart, empty")

    # The notification arrives by itself (from the orders event, through notifications).
    toast = page.locator(".toast", has_text="New notification: Your order is confirmed")
    expect(toast).to_be_visible(timeout=30_000)
    expect(page.get_by_role("link", name=re.compile(r"^Notifications, \d+ unread"))).to_be_visible()
    shop.audit()
    shop.snap("order-confirmed")
    order_url = page.url
    toast.get_by_role("link", name="See notifications").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Notifications")
    expect(page.get_by_role("heading", name=re.compile("Your order is confirmed"))).to_be_visible()
    expect(page.get_by_role("link", name="Notifications", exact=True)).to_be_visible()  # all read
    shop.audit()
    shop.snap("notifications")

    page.get_by_role("link", name="Orders", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your orders")
    rows = page.locator(".order-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Confirmed")
    expect(rows.first).to_contain_text("€178.00")
    shop.audit()
    shop.snap("orders")

    # Cancelling a confirmed order refunds it; the page follows that too.
    page.goto(order_url)
    page.get_by_role("button", name="Cancel order").click()
    page.get_by_role("button", name="Yes, cancel the order").click()
    expect(status).to_have_text("Cancelled")
    expect(page.get_by_test_id("order-explanation")).to_contain_text("€178.00 was refunded")

    # Signing out and back in.
    page.get_by_role("link", name="Account").click()
    page.get_by_role("button", name="Sign out").click()
    menu = page.get_by_role("navigation", name="Main")
    expect(menu.get_by_role("link", name="Sign in")).to_be_visible()
    expect(menu.get_by_role("link", name="Orders")).to_be_hidden()
    page.goto(f"{shop.base}/#/orders")
    page.get_by_role("main").get_by_role("link", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    shop.audit()
    shop.sign_in(email)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your orders")  # back where we were
    expect(page.locator(".order-row").first).to_contain_text("Cancelled")
    shop.assert_clean()


def test_a_declined_card_is_said_plainly_and_nothing_is_charged(shop: Shop) -> None:
    page = shop.page
    shop.open()
    shop.register("Grace")
    search(page, "puzzle")
    add_from_product_page(page, "1000-Piece Jigsaw Puzzle")
    place_order(page, "Test card that is declined")
    expect(page.get_by_test_id("order-status")).to_have_text("Not placed")
    explanation = page.get_by_test_id("order-explanation")
    expect(explanation.get_by_role("alert")).to_have_text(
        "Your card was declined. Nothing was charged. Try another card."
    )
    expect(page.locator(".facts")).to_contain_text("Declined")
    expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)
    shop.audit()
    shop.snap("order-declined")

    # Someone else cannot see it: the same answer as for an order that does not exist.
    order_url = page.url
    page.get_by_role("link", name="Account").click()
    page.get_by_role("button", name="Sign out").click()
    shop.register("Mallory")
    page.goto(order_url)
    expect(page.get_by_role("alert")).to_have_text("We couldn't find that order.")
    expect(page.get_by_test_id("order-status")).to_have_count(0)
    shop.audit()
    shop.assert_clean(expected_statuses=(404,))


def test_an_item_that_sells_out_before_checkout_is_said_plainly(
    shop: Shop, platform: Platform
) -> None:
    name = f"Limited Teapot {uuid.uuid4().hex[:6].upper()}"
    product = platform.new_product(name, stock=1)
    page = shop.page
    shop.open()
    shop.register("Linus")
    search(page, name)
    card = page.locator(".card", has_text=name)
    expect(card.get_by_test_id("stock")).to_have_text("Only 1 left")
    add_from_product_page(page, name)
    expect(page.get_by_test_id("stock")).to_have_text("Only 1 left")
    cart_link(page).click()
    expect(page.get_by_role("button", name="Place order")).to_be_enabled()

    # Someone else buys the last one while this shopper looks at the cart.
    platform.set_stock(product["sku"], 0)
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_test_id("order-status")).to_have_text("Not placed")
    expect(page.get_by_test_id("order-explanation")).to_have_text(
        "Sorry, some items ran out of stock before we could reserve them. Nothing was charged."
    )
    shop.audit()
    shop.snap("order-out-of-stock")

    page.get_by_role("link", name=name).click()
    expect(page.get_by_test_id("stock")).to_have_text("Out of stock")
    expect(page.get_by_role("button", name="Out of stock")).to_be_disabled()
    shop.audit()
    shop.snap("product-out-of-stock")

    # And the cart says so before anyone tries again.
    platform.set_stock(product["sku"], 0)
    page.evaluate(
        "([id, name]) => localStorage.setItem('mercato.cart.v1', JSON.stringify("
        "[{product_id: id, name, price: {amount: 2450, currency: 'EUR'}, quantity: 1}]))",
        [product["id"], name],
    )
    page.goto(f"{shop.base}/#/cart")
    expect(page.get_by_role("alert")).to_contain_text(
        "Out of stock. Please remove it to check out."
    )
    expect(page.get_by_role("button", name="Place order")).to_have_count(0)
    shop.audit()
    shop.assert_clean()


def test_too_many_sign_in_attempts_are_said_plainly(shop: Shop) -> None:
    page = shop.page
    shop.open("/signin")
    email = f"mallory-{uuid.uuid4().hex[:8]}@example.com"
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill("not the password at all")
    form_message = page.get_by_role("main").get_by_role("alert")
    for _ in range(5):
        page.get_by_role("button", name="Sign in").click()
        expect(form_message).to_have_text("That email address and password don't match an account.")
        expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
    page.get_by_role("button", name="Sign in").click()
    expect(form_message).to_have_text(
        re.compile(
            r"^Too many sign-in attempts\. Please wait \d+ (seconds|minutes?) and try again\.$"
        )
    )
    shop.audit()
    shop.snap("signin-throttled")
    # The browser reports each refused attempt itself; those are the only errors allowed.
    shop.assert_clean(expected_statuses=(401, 429))


def test_the_gateways_rate_limit_is_said_plainly(throttled_shop: Shop) -> None:
    page = throttled_shop.page
    throttled_shop.open()  # the categories, the products and their stock: the whole burst
    expect(page.locator(".card").first).to_be_visible()
    box = page.get_by_role("searchbox", name="Search products")
    box.fill("lamp")
    box.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("We couldn't show this page")
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(
            r"^You're going a little fast for us\. Please wait \d+ (seconds|minutes?) and try again\.$"
        )
    )
    expect(page.get_by_role("button", name="Try again")).to_be_visible()
    throttled_shop.audit()
    throttled_shop.snap("rate-limited")
    throttled_shop.assert_clean(expected_statuses=(429,))


def test_the_shop_works_on_a_phone_sized_screen(phone: Shop) -> None:
    page = phone.page
    phone.open()
    expect(page.locator(".card").first).to_be_visible()
    phone.no_horizontal_scroll()
    phone.audit()
    phone.snap("phone-catalog")

    phone.register("Margaret")
    phone.no_horizontal_scroll()
    search(page, "mug")
    card = page.locator(".card").first
    name = card.get_by_role("link").inner_text().strip()
    card.get_by_role("link").tap()
    # The product page itself (the results' card had a stock line too).
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.get_by_test_id("stock")).to_be_visible()
    phone.no_horizontal_scroll()
    phone.audit()
    phone.snap("phone-product")
    page.get_by_role("button", name="Add to cart").tap()
    cart_link(page).tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your cart")
    expect(page.get_by_role("button", name="Place order")).to_be_visible()
    phone.no_horizontal_scroll()
    phone.audit()
    phone.snap("phone-cart")
    page.get_by_role("button", name="Place order").tap()
    expect(page.get_by_test_id("order-status")).to_have_text("Confirmed")
    phone.no_horizontal_scroll()
    phone.audit()
    phone.snap("phone-order")
    phone.assert_clean()
