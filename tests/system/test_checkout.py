"""Issue 5's checkout on a running `mercato up`, through the gateway, with `mercato check`
auditing every invariant after each scenario (including crashes mid-checkout)."""

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mercato_cli.local import LocalPlatform

pytestmark = [pytest.mark.system, pytest.mark.slow]

PASSWORD = "correct horse battery staple"


class Platform(LocalPlatform):
    def check(self) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            result = self.mercato("check", "--json")
            report: dict[str, Any] = json.loads(result.stdout)
            # Orders still inside their saga timeout are fine; wait for them to settle.
            if not report["violations"] or time.monotonic() > deadline:
                return report
            time.sleep(1)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("checkout") / "data"
    # No shedding here (the overload tests cover it): these scenarios are about correctness
    # under concurrency and crashes, and want every order taken.
    env = {**os.environ, "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
           "GATEWAY_RATE_LIMIT_BURST": "100000", "ORDERS_CHECKOUT_FLOOR": "100000"}  # fmt: skip
    with Platform(data_dir, env=env).start(timeout=120) as platform:
        for _ in range(200):  # the demo catalog, loaded once everything is ready
            listing = httpx.get(f"{platform.base}/api/v1/products", params={"limit": 100})
            if listing.status_code == 200 and len(listing.json()["items"]) >= 50:
                break
            time.sleep(0.2)
        yield platform


def shopper(base: str) -> dict[str, str]:
    email = f"shopper-{uuid.uuid4().hex[:10]}@example.com"
    registered = httpx.post(f"{base}/api/v1/auth/register",
                            json={"email": email, "password": PASSWORD, "name": "Shopper"})  # fmt: skip
    assert registered.status_code == 201, registered.text
    tokens = httpx.post(f"{base}/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def admin(platform: Platform) -> dict[str, str]:
    password = (platform.data_dir / "secrets" / "admin_password").read_text().strip()
    tokens = httpx.post(f"{platform.base}/api/v1/auth/token",
                        json={"email": "admin@mercato.local", "password": password})  # fmt: skip
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def new_product(platform: Platform, stock: int) -> dict[str, Any]:
    """A product of our own (so scenarios don't share stock), with `stock` units."""
    sku = f"T-{uuid.uuid4().hex[:8]}"
    body = {"sku": sku, "name": f"Test item {sku}", "category": "kitchen",
            "price": {"amount": 1250, "currency": "EUR"}}  # fmt: skip
    created = httpx.post(f"{platform.base}/api/v1/products", json=body, headers=admin(platform))
    assert created.status_code == 201, created.text
    for _ in range(100):  # inventory creates the stock record from catalog's event
        answer = httpx.put(f"{platform.base}/api/v1/inventory/stock/{sku}",
                           json={"action": "adjust", "available": stock, "reason": "test"},
                           headers=admin(platform))  # fmt: skip
        if answer.status_code == 200:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no stock record for {sku}: {answer.text}")
    product: dict[str, Any] = created.json()
    return product


def place(base: str, who: dict[str, str], product_id: str, quantity: int, token: str) -> str:
    answer = httpx.post(f"{base}/api/v1/orders",
                        json={"items": [{"product_id": product_id, "quantity": quantity}],
                              "payment_token": token},
                        headers={**who, "Idempotency-Key": uuid.uuid4().hex}, timeout=30)  # fmt: skip
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def settled(
    base: str, who: dict[str, str], order_id: str, *, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(f"{base}/api/v1/orders/{order_id}", headers=who, timeout=10)
        if answer.status_code == 200 and answer.json()["status"] != "PENDING":
            order: dict[str, Any] = answer.json()
            return order
        time.sleep(0.1)
    raise AssertionError(f"order {order_id} did not settle")


def available(base: str, product_id: str) -> int:
    product = httpx.get(f"{base}/api/v1/products/{product_id}").json()
    return int(product["availability"]["available"])


def test_confirm_decline_out_of_stock_and_cancel(platform: Platform) -> None:
    base = platform.base
    who = shopper(base)
    product = new_product(platform, stock=10)

    confirmed = settled(base, who, place(base, who, product["id"], 2, "tok_visa"))
    assert confirmed["status"] == "CONFIRMED"
    assert confirmed["total"] == {"amount": 2500, "currency": "EUR"}
    assert confirmed["payment"]["status"] == "captured"
    assert available(base, product["id"]) == 8

    declined = settled(base, who, place(base, who, product["id"], 3, "tok_chargeDeclined"))
    assert (declined["status"], declined["reason"]) == ("REJECTED", "payment_declined")
    assert available(base, product["id"]) == 8  # released again

    too_many = settled(base, who, place(base, who, product["id"], 9, "tok_visa"))
    assert (too_many["status"], too_many["reason"]) == ("REJECTED", "out_of_stock")
    payment = too_many["payment"]
    assert payment is None or payment["captured"]["amount"] == 0

    cancel = httpx.post(f"{base}/api/v1/orders/{confirmed['id']}/cancel", headers=who)
    assert cancel.status_code == 202, cancel.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        order = httpx.get(f"{base}/api/v1/orders/{confirmed['id']}", headers=who).json()
        if order["status"] == "CANCELLED":
            break
        time.sleep(0.1)
    assert order["status"] == "CANCELLED"
    assert order["payment"]["refunded"] == {"amount": 2500, "currency": "EUR"}
    assert available(base, product["id"]) == 10

    kinds = {
        n["kind"] for n in httpx.get(f"{base}/api/v1/notifications", headers=who).json()["items"]
    }
    assert {"welcome", "order_confirmed", "order_rejected", "order_cancelled"} <= kinds

    # another shopper sees none of it
    stranger = shopper(base)
    assert httpx.get(f"{base}/api/v1/orders/{confirmed['id']}", headers=stranger).status_code == 404

    report = platform.check()
    assert report["violations"] == [], report
    assert report["orders_checked"] >= 3


def test_two_hundred_concurrent_orders_for_fifty_units(platform: Platform) -> None:
    base = platform.base
    product = new_product(platform, stock=50)
    shoppers = [shopper(base) for _ in range(10)]

    async def run() -> list[str]:
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(n: int) -> str:
                answer = await client.post(
                    f"{base}/api/v1/orders",
                    json={"items": [{"product_id": product["id"], "quantity": 1}],
                          "payment_token": "tok_visa"},
                    headers={**shoppers[n % 10], "Idempotency-Key": uuid.uuid4().hex},
                )  # fmt: skip
                assert answer.status_code == 202, answer.text
                return str(answer.json()["id"])

            ids: list[str] = []
            for wave in range(10):  # 20 per wave: each shopper keeps <= 20 pending
                ids += await asyncio.gather(*(one(wave * 20 + n) for n in range(20)))
            return ids

    ids = asyncio.run(run())
    statuses = [settled(base, shoppers[n % 10], order_id, timeout=120)["status"]
                for n, order_id in enumerate(ids)]  # fmt: skip
    assert statuses.count("CONFIRMED") == 50
    assert statuses.count("REJECTED") == 150
    assert available(base, product["id"]) == 0
    report = platform.check()
    assert report["violations"] == [], report


@pytest.mark.parametrize("victim", ["orders", "inventory", "payments"])
def test_a_killed_participant_mid_checkout_settles_every_order(
    platform: Platform, victim: str
) -> None:
    base = platform.base
    product = new_product(platform, stock=1000)
    shoppers = [shopper(base) for _ in range(5)]
    target = next(r for r in platform.status() if r["service"] == victim)

    async def run() -> list[tuple[int, str]]:
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(n: int) -> tuple[int, str]:
                for _ in range(50):  # orders itself may be down for a moment: retry, same key
                    key = f"{victim}-{n}-{product['id']}"
                    try:
                        answer = await client.post(
                            f"{base}/api/v1/orders",
                            json={"items": [{"product_id": product["id"], "quantity": 1}],
                                  "payment_token": "tok_visa"},
                            headers={**shoppers[n % 5], "Idempotency-Key": key},
                        )  # fmt: skip
                    except httpx.TransportError:
                        answer = None
                    if answer is not None and answer.status_code == 202:
                        return n, str(answer.json()["id"])
                    await asyncio.sleep(0.2)
                raise AssertionError(f"order {n} was never accepted")

            placing = [asyncio.create_task(one(n)) for n in range(100)]
            await asyncio.sleep(0.3)
            os.kill(target["pid"], signal.SIGKILL)  # in the middle of 100 in-flight orders
            return list(await asyncio.gather(*placing))

    placed = asyncio.run(run())
    for n, order_id in placed:
        assert settled(base, shoppers[n % 5], order_id, timeout=120)["status"] in (
            "CONFIRMED", "REJECTED"
        )  # fmt: skip
    report = platform.check()
    assert report["violations"] == [], report


def test_a_psp_timeout_after_charging_is_neither_lost_nor_doubled(platform: Platform) -> None:
    base = platform.base
    psp = platform.url_of("psp")
    knobs = {
        "latency_ms": 0,
        "error_rate": 0,
        "timeout_after_charge_rate": 1.0,
        "timeout_seconds": 7,
    }
    assert (
        httpx.put(f"{psp}/v1/_faults", json=knobs, headers=platform.internal()).status_code == 200
    )
    try:
        who = shopper(base)
        product = new_product(platform, stock=5)
        order = settled(base, who, place(base, who, product["id"], 1, "tok_visa"), timeout=90)
    finally:
        calm = {
            "latency_ms": 0,
            "error_rate": 0,
            "timeout_after_charge_rate": 0,
            "timeout_seconds": 7,
        }
        httpx.put(f"{psp}/v1/_faults", json=calm, headers=platform.internal())
    charges = httpx.get(f"{psp}/internal/audit/charges", headers=platform.internal()).json()
    mine = [c for c in charges["items"] if c["reference"] == order["id"]]
    # Every psp answer is held past payments' timeout, so the saga may give up (and void)
    # or get through on reconciliation; either way there is exactly one authorization, and
    # the money matches the outcome: captured once when confirmed, nothing kept otherwise.
    assert len(mine) == 1, mine
    net = mine[0]["captured_amount"] - mine[0]["refunded_amount"]
    if order["status"] == "CONFIRMED":
        assert net == 1250
    else:
        assert (order["status"], order["reason"]) == ("REJECTED", "timeout")
        assert net == 0
        assert mine[0]["status"] in ("voided", "refunded", "authorized"), mine
    report = platform.check()
    assert report["violations"] == [], report
