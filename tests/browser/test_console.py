"""The operations console in headless Chromium, on a platform started the way a user starts
it (`mercato up`, tests/browser/conftest.py): an operator signs in, reads the service map,
follows an order's checkout saga to its trace, reads the charts, replays a dead letter,
turns the psp's knobs and kills an instance, each behind its confirmation, and watches it
come back. Customers and anonymous callers are turned away by the console's API.

The journey also proves the browser logged no error, threw nothing and asked no host but the
gateway, checks every page for accessibility (conftest's audit), and saves screenshots
(`console-*.png`) of what it saw.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from chassis.messaging import Envelope, bus_from_url

if TYPE_CHECKING:  # the fixtures' types, from this folder's conftest.py
    from conftest import Platform, Shop

pytestmark = [pytest.mark.system, pytest.mark.slow]

expect.set_options(timeout=30_000)

SERVICES = ("gateway", "identity", "catalog", "inventory", "orders", "payments", "notifications",
            "psp")  # fmt: skip
CONSOLE_CALLS = [
    ("GET", "/api/v1/console/services"),
    ("GET", "/api/v1/console/resilience"),
    ("GET", "/api/v1/console/metrics"),
    ("GET", "/api/v1/console/sagas"),
    ("GET", f"/api/v1/console/sagas/{uuid.uuid4()}"),
    ("GET", "/api/v1/console/traces"),
    ("GET", f"/api/v1/console/traces/{uuid.uuid4().hex}"),
    ("GET", "/api/v1/console/dead-letters"),
    ("POST", "/api/v1/console/dead-letters/some-letter/replay"),
    ("POST", "/api/v1/console/dead-letters/some-letter/discard"),
    ("GET", "/api/v1/console/faults/psp"),
    ("PUT", "/api/v1/console/faults/psp"),
    ("POST", "/api/v1/console/instances/psp-1/kill"),
]


def customer_token(base: str) -> str:
    email = f"customer-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    created = httpx.post(f"{base}/api/v1/auth/register",
                         json={"email": email, "password": password, "name": "Cora"})  # fmt: skip
    assert created.status_code == 201, created.text
    tokens = httpx.post(f"{base}/api/v1/auth/token", json={"email": email, "password": password})
    assert tokens.status_code == 200, tokens.text
    token: str = tokens.json()["access_token"]
    return token


def place_order(base: str, token: str) -> tuple[str, str]:
    """An order through the public API, confirmed by its saga: (order id, trace id)."""
    headers = {"Authorization": f"Bearer {token}"}
    product = httpx.get(f"{base}/api/v1/products", params={"limit": 1}).json()["items"][0]
    placed = httpx.post(
        f"{base}/api/v1/orders",
        json={"items": [{"product_id": product["id"], "quantity": 1}], "payment_token": "tok_visa"},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert placed.status_code == 202, placed.text
    order_id: str = placed.json()["id"]
    for _ in range(300):
        order = httpx.get(f"{base}/api/v1/orders/{order_id}", headers=headers).json()
        if (
            order["status"] != "PENDING"
            and (order.get("payment") or {}).get("status") == "captured"
        ):
            break
        time.sleep(0.1)
    assert order["status"] == "CONFIRMED", order
    return order_id, placed.headers["x-trace-id"]


def publish_poison(broker_url: str) -> str:
    """A well-formed command no consumer can carry out: commit the stock of an order that
    inventory never reserved. Inventory refuses it for good, so it is dead-lettered at once
    (and again after each replay). Its message id."""

    async def publish() -> str:
        bus = bus_from_url(broker_url, service="console-test")
        await bus.start()
        try:
            order_id = f"no-such-order-{uuid.uuid4().hex[:8]}"
            envelope = Envelope(type="inventory.commit_stock.v1", source="console-test",
                                subject=order_id, data={"order_id": order_id})  # fmt: skip
            await bus.publish(envelope)
            return envelope.id
        finally:
            await bus.close()

    # In a thread of its own: Playwright's sync API keeps an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, publish()).result()


def dead_letter_of(base: str, admin: dict[str, str], message_id: str) -> dict[str, Any] | None:
    letters = httpx.get(f"{base}/api/v1/console/dead-letters", headers=admin).json()["items"]
    return next((x for x in letters if x["message_id"] == message_id), None)


@pytest.fixture
def load(platform: Platform) -> Iterator[None]:
    """Shoppers in the background (`mercato load`, a few arrivals per second), so the
    charts have traffic to draw; stopped by its pid at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mercato_cli", "--data-dir", str(platform.data_dir), "load",
         "--base-url", platform.base, "--rate", "4", "--duration", "150", "--users", "4",
         "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_console_api_turns_away_customers_and_anonymous_callers(platform: Platform) -> None:
    customer = {"Authorization": f"Bearer {customer_token(platform.base)}"}
    forged = {"Authorization": "Bearer not-a-token"}
    for method, path in CONSOLE_CALLS:
        url = f"{platform.base}{path}"
        for headers, status in (({}, 401), (forged, 401), (customer, 403)):
            answer = httpx.request(method, url, headers=headers, json={"latency_ms": 5000})
            assert answer.status_code == status, (method, path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["status"] == status
    # The psp was not slowed down, nothing was killed, by any of those.
    admin = platform.admin_headers()
    knobs = httpx.get(f"{platform.base}/api/v1/console/faults/psp", headers=admin).json()
    assert knobs["knobs"]["latency_ms"] == 0
    services = httpx.get(f"{platform.base}/api/v1/console/services", headers=admin).json()
    assert all(i["restarts"] == 0 for s in services["services"] for i in s["instances"])


def nav(page: Page, name: str, heading: str | None = None) -> None:
    page.get_by_role("navigation", name="Console").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(heading or name)


def test_an_operator_follows_the_platform_and_injects_faults(
    shop: Shop, platform: Platform, load: None
) -> None:
    order_id, trace_id = place_order(platform.base, customer_token(platform.base))
    state = json.loads((platform.data_dir / "run" / "state.json").read_text())
    message_id = publish_poison(state["broker_url"])
    page = shop.page

    # Signing in: an operator's account only.
    page.goto(f"{platform.base}/console")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the console")
    shop.audit()
    password = (platform.data_dir / "secrets" / "admin_password").read_text().strip()
    page.get_by_label("Email address").fill("admin@mercato.local")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()

    # The service map: all eight services, every instance ready, the calls seen in traces.
    expect(page.get_by_role("heading", level=1)).to_have_text("Services")
    expect(page.get_by_test_id("services-summary")).to_have_text(
        "8 services, 8 of 8 instances ready."
    )
    for service in SERVICES:
        expect(page.locator(f'[data-service="{service}"]')).to_contain_text("1/1 ready")
    # The page redraws every 3 s, but not while the focus is inside it (the list's toggle,
    # once clicked): so the calls are awaited first, then the list is opened.
    edges = page.get_by_test_id("edge-list")
    expect(edges).to_contain_text(re.compile(r"gateway → orders \(call\) seen \d+×"))
    expect(edges).to_contain_text(re.compile(r"orders → inventory \(message\) seen \d+×"))
    expect(edges).to_contain_text(re.compile(r"payments → psp \(call\) seen \d+×"))
    page.get_by_text("Calls and messages as a list").click()
    expect(edges).to_be_visible()
    page.get_by_text("Calls and messages as a list").click()
    expect(page.locator("[data-edge]").first).to_be_attached()
    shop.audit()
    shop.snap("console-services")

    # The order's saga, found by its state, and its timeline.
    nav(page, "Sagas")
    page.get_by_label("State").select_option("COMPLETED")
    row = page.get_by_role("row").filter(has_text=order_id)
    expect(row).to_contain_text("COMPLETED")
    shop.audit()
    shop.snap("console-sagas")
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Checkout saga")
    expect(page.get_by_test_id("saga-status")).to_have_text("COMPLETED")
    timeline = page.get_by_test_id("saga-timeline")
    for step in ("reserve_stock", "authorize_payment", "capture_payment", "commit_reservation"):
        expect(
            timeline.locator("li", has_text=step).filter(has_text="succeeded")
        ).not_to_have_count(0)
    expect(timeline).to_contain_text("inventory.reserve_stock.v1")
    expect(timeline.locator("li").last).to_contain_text("completed")
    shop.audit()
    shop.snap("console-saga")

    # …to the trace its steps ran in: the order's own (the X-Trace-Id of the POST).
    page.get_by_role("link", name=re.compile(r"^Open trace")).click()
    expect(page).to_have_url(re.compile(f"#/traces/{trace_id}$"))
    waterfall = page.get_by_test_id("waterfall")
    expect(waterfall.locator("li").first).to_contain_text("POST /api/v1/orders")
    for service in ("gateway", "orders", "inventory", "payments", "psp"):
        expect(waterfall.locator(f'li[data-service="{service}"]').first).to_be_visible()
    expect(page.get_by_test_id("trace-summary")).to_contain_text("0 errors")
    sql = waterfall.locator("li[data-sql]")
    expect(sql.first).to_be_hidden()  # until asked for
    shop.audit()
    shop.snap("console-trace")
    page.get_by_label(re.compile(r"^Show the SQL statements")).check()
    expect(sql.first).to_be_visible()
    span = waterfall.get_by_role("button", name="POST /v1/authorizations").first
    span.click()
    expect(span).to_have_attribute("aria-expanded", "true")
    expect(waterfall.locator(".span-details").filter(has_text="http.route")).not_to_have_count(0)

    nav(page, "Traces")
    expect(page.locator("a[data-trace]").first).to_be_visible()
    page.get_by_role("link", name="Slowest").click()
    expect(page.get_by_role("link", name="Slowest")).to_have_attribute("aria-current", "page")
    expect(page.locator("a[data-trace]").first).to_be_visible()
    shop.audit()

    # The charts, from the scrapes the gateway started when the console was first used.
    nav(page, "Metrics")
    for chart in ("chart-rate", "chart-errors", "chart-p99", "chart-orders"):
        expect(page.get_by_test_id(chart).locator("svg")).to_be_visible()
    expect(page.get_by_test_id("chart-rate").locator("polyline")).not_to_have_count(0)
    expect(page.get_by_test_id("chart-rate")).to_contain_text(re.compile(r"gateway: \d"))
    expect(page.get_by_test_id("chart-orders")).to_contain_text(
        re.compile(r"placed: [\d.]+ orders/s")
    )
    shop.audit()

    # Breakers, outboxes, lag; the poison message in the dead letters, replayed after a
    # confirmation, and dead again (inventory still refuses it) as a new letter.
    nav(page, "Resilience")
    expect(page.get_by_role("table", name="Circuit breakers by calling instance")).to_contain_text(
        "gateway-1"
    )
    expect(page.get_by_role("table", name="Consumer lag per consumer group")).to_contain_text(
        "inventory"
    )
    letter = page.locator(f'li.letter[data-message-id="{message_id}"]')
    expect(letter).to_contain_text("inventory.commit_stock.v1 for inventory")
    expect(letter).to_contain_text("Reservation not found")
    first_id = letter.get_attribute("data-letter")
    shop.audit()
    shop.snap("console-resilience")
    letter.get_by_role("button", name="Replay…").click()
    letter.get_by_role("button", name="Yes, replay to inventory").click()
    expect(
        page.get_by_role("status").filter(has_text="Replayed: inventory.commit_stock.v1")
    ).to_be_visible()
    admin = platform.admin_headers()
    for _ in range(30):
        found = dead_letter_of(platform.base, admin, message_id)
        if found is not None and found["id"] != first_id:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the replayed message did not come back to the dead letters")
    page.get_by_role("button", name="Refresh the dead letters").click()
    expect(page.locator(f'li.letter[data-letter="{found["id"]}"]')).to_be_visible()
    expect(page.locator(f'li.letter[data-letter="{first_id}"]')).to_have_count(0)

    # Fault injection: the psp slowed down and healed, then an instance killed and back.
    nav(page, "Faults", "Fault injection")
    expect(page.get_by_test_id("psp-knobs")).to_contain_text("healthy: no faults")
    page.get_by_label("Added latency (ms)").fill("150")
    page.get_by_role("button", name="Apply to the psp…").click()
    expect(page.get_by_role("group", name="Apply to the psp")).to_contain_text(
        "150 ms added to every call"
    )
    page.get_by_role("button", name="Yes, apply").click()
    expect(page.get_by_test_id("psp-knobs")).to_contain_text("150 ms added to every call")
    knobs = httpx.get(f"{platform.base}/api/v1/console/faults/psp", headers=admin).json()
    assert knobs["knobs"]["latency_ms"] == 150
    page.get_by_role("button", name="Make the psp healthy…").click()
    page.get_by_role("button", name="Yes, turn faults off").click()
    expect(page.get_by_test_id("psp-knobs")).to_contain_text("healthy: no faults")

    page.get_by_label("Instance", exact=True).select_option("notifications-1")
    page.get_by_role("button", name="Kill this instance…").click()
    page.get_by_role("button", name="Keep it running").click()  # changed our mind: nothing
    page.get_by_role("button", name="Kill this instance…").click()
    expect(page.get_by_role("group", name="Kill this instance")).to_contain_text(
        "Kill notifications-1 with SIGKILL?"
    )
    shop.audit()
    shop.snap("console-faults")
    page.get_by_role("button", name="Yes, kill notifications-1").click()
    expect(page.get_by_text(re.compile(r"Killed notifications-1 \(pid \d+\)"))).to_be_visible()
    expect(page.get_by_test_id("back")).to_have_text(
        "notifications-1 is back and ready (restarted 1 time by the supervisor).", timeout=90_000
    )
    shop.audit()
    shop.snap("console-faults-back")

    nav(page, "Services")
    expect(page.get_by_test_id("services-summary")).to_have_text(
        "8 services, 8 of 8 instances ready."
    )
    row = page.get_by_role("row").filter(has_text="notifications-1")
    expect(row.get_by_role("cell").last).to_have_text("1")  # restarts

    # The charts again, with more samples (at least eight points a line).
    nav(page, "Metrics")
    expect(page.get_by_test_id("chart-p99").locator("polyline")).not_to_have_count(0)
    lines = page.get_by_test_id("chart-rate").locator("polyline")
    expect(lines.first).to_have_attribute("points", re.compile(r"^(\S+ ){7}"), timeout=60_000)
    shop.audit()
    shop.snap("console-metrics")
    shop.assert_clean()
