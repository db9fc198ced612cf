"""Step 1 of docs/migration.md for real: the monolith baseline (bench/monolith) behind the
gateway, with the catalog moved out to the catalog service.

The gateway sends `/api/v1/auth` and `/api/v1/orders` to the monolith by static upstream
routes (`GATEWAY_STATIC_ROUTES`) and `/api/v1/products` to the catalog service; its static
registry names the monolith as `identity` (whose JWKS the gateway checks tokens with) and
`inventory` (whose availability it adds to a product). The monolith prices orders at the
catalog, keeps stock by SKU and pays through the psp. Each request is checked to land where
the step says: the monolith marks its answers `X-Served-By: monolith`, and each side's own
state is read directly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chassis import free_port

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _static_routes_take_precedence() -> bool:
    """Whether the gateway sends a prefix with a static route to that upstream, rather than
    to the service the public route table maps the same prefix to. The strangler fig needs
    it; until the gateway does it, the orders part of this test cannot pass."""
    from chassis.discovery import StaticRegistry
    from gateway.bootstrap import EDGE, build_app
    from gateway.settings import GatewaySettings

    settings = GatewaySettings(static_routes="/api/v1/orders=http://127.0.0.1:9")
    app = build_app(settings, registry=StaticRegistry([]), configure_logs=False)
    route = app[EDGE].routes.match("/api/v1/orders")
    return route is not None and route.upstream is not None


ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "bench" / "monolith" / "shop.py"
ADMIN = {"email": "admin@mercato.local", "password": "strangler test admin password"}
PASSWORD = "correct horse battery staple"


@dataclass
class Step1:
    gateway: str
    monolith: str
    catalog: str
    psp: str


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)  # fmt: skip


def _wait_ready(urls: list[str], processes: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + 60
    waiting = list(urls)
    while waiting and time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"{process.args!r} exited; logs in {logs}")
        try:
            if httpx.get(f"{waiting[0]}/readyz", timeout=2).status_code == 200:
                waiting.pop(0)
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    assert not waiting, f"not ready: {waiting}; logs in {logs}"


@pytest.fixture(scope="module")
def step1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Step1]:
    folder = tmp_path_factory.mktemp("strangler")
    ports = {name: free_port() for name in ("psp", "catalog", "monolith", "gateway")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    base = {**os.environ, "MERCATO_LOG_LEVEL": "warning", "MERCATO_REGISTRY_URL": "",
            "MERCATO_BROKER_URL": "memory://", "MERCATO_DATA_DIR": str(folder)}  # fmt: skip
    base.pop("MERCATO_TRACE_DIR", None)
    processes = [
        _start([sys.executable, "-m", "psp"], {**base, "PSP_PORT": str(ports["psp"])},
               folder / "psp.log"),
        _start([sys.executable, "-m", "catalog"], {**base, "CATALOG_PORT": str(ports["catalog"])},
               folder / "catalog.log"),
        _start([sys.executable, str(SHOP)],
               {**base, "MONOLITH_PORT": str(ports["monolith"]),
                "MONOLITH_DATA_DIR": str(folder / "monolith"), "MONOLITH_PSP_URL": urls["psp"],
                "MONOLITH_CATALOG_URL": urls["catalog"], "MONOLITH_INITIAL_STOCK": "5",
                "MONOLITH_ADMIN_EMAIL": ADMIN["email"], "MONOLITH_ADMIN_PASSWORD": ADMIN["password"]},
               folder / "monolith.log"),
        # Step 1 exactly as docs/migration.md gives it.
        _start([sys.executable, "-m", "gateway"],
               {**base, "GATEWAY_PORT": str(ports["gateway"]),
                "GATEWAY_STATIC_ROUTES": f"/api/v1/auth={urls['monolith']},/api/v1/orders={urls['monolith']}",
                "MERCATO_REGISTRY_URL": f"static:catalog={urls['catalog']};identity={urls['monolith']};"
                                        f"inventory={urls['monolith']}",
                "GATEWAY_RATE_LIMIT_PER_SECOND": "10000", "GATEWAY_RATE_LIMIT_BURST": "10000"},
               folder / "gateway.log"),
    ]  # fmt: skip
    try:
        _wait_ready(
            [urls["psp"], urls["catalog"], urls["monolith"], urls["gateway"]], processes, folder
        )
        yield Step1(urls["gateway"], urls["monolith"], urls["catalog"], urls["psp"])
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _monolith_served(answer: httpx.Response) -> bool:
    return bool(answer.headers.get("x-served-by") == "monolith")


def _bearer(base: str, email: str, password: str) -> dict[str, str]:
    answer = httpx.post(f"{base}/api/v1/auth/token", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    assert _monolith_served(answer)
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.mark.xfail(
    not _static_routes_take_precedence(),
    reason="gateway: a static route is shadowed by the service route of the same prefix "
    "(RouteTable keeps the last route per prefix), so /api/v1/orders goes to `orders`",
    raises=AssertionError,
    strict=True,
)
def test_auth_and_orders_reach_the_monolith_and_products_the_catalog_service(step1: Step1) -> None:
    gateway = step1.gateway
    admin = _bearer(gateway, **ADMIN)  # the monolith signs in its admin; the gateway trusts it

    # Still step 0's data: a product the monolith sells, with its stock (5 units).
    sku = f"STR-{uuid.uuid4().hex[:8]}"
    legacy = {"sku": sku, "name": "Strangler fig seedling", "category": "garden",
              "price": {"amount": 2400, "currency": "EUR"}}  # fmt: skip
    made = httpx.post(f"{step1.monolith}/api/v1/products", json=legacy, headers=admin)
    assert made.status_code == 201, made.text

    # The catalog copy (docs/migration.md, step 1): through the gateway, as the admin the
    # monolith signed in; the product lands at the catalog service, not at the monolith.
    copied = httpx.post(f"{gateway}/api/v1/products", json=legacy, headers=admin)
    assert copied.status_code == 201, copied.text
    assert not _monolith_served(copied)
    product_id = copied.json()["id"]
    assert httpx.get(f"{step1.catalog}/api/v1/products/{product_id}").status_code == 200
    assert httpx.get(f"{step1.monolith}/api/v1/products/{product_id}").status_code == 404

    # The catalog owns prices from now on: a change made there is what orders are priced at.
    repriced = httpx.patch(f"{gateway}/api/v1/products/{product_id}",
                           json={"price": {"amount": 1999, "currency": "EUR"}}, headers=admin)  # fmt: skip
    assert repriced.status_code == 200, repriced.text

    # Reads of products: the catalog's list, the product composed with the monolith's stock.
    listing = httpx.get(f"{gateway}/api/v1/products", params={"limit": 100})
    assert listing.status_code == 200 and not _monolith_served(listing)
    assert product_id in [p["id"] for p in listing.json()["items"]]
    page = httpx.get(f"{gateway}/api/v1/products/{product_id}").json()
    assert page["price"]["amount"] == 1999
    assert page["availability"] == {"sku": sku, "available": 5, "in_stock": True}

    # Sign-up and sign-in: the monolith.
    email = f"fig-{uuid.uuid4().hex[:10]}@example.com"
    registered = httpx.post(f"{gateway}/api/v1/auth/register",
                            json={"email": email, "password": PASSWORD, "name": "Fig"})  # fmt: skip
    assert registered.status_code == 201, registered.text
    assert _monolith_served(registered)
    shopper = _bearer(gateway, email, PASSWORD)

    # The checkout: the monolith, with the catalog's product id and price, its own stock
    # and the psp.
    placed = httpx.post(f"{gateway}/api/v1/orders",
                        json={"items": [{"product_id": product_id, "quantity": 2}], "payment_token": "tok_visa"},
                        headers={**shopper, "Idempotency-Key": uuid.uuid4().hex}, timeout=30)  # fmt: skip
    assert placed.status_code == 202, placed.text
    assert _monolith_served(placed)
    order_id = placed.json()["id"]
    order = _settled(gateway, shopper, order_id)
    assert order["status"] == "CONFIRMED", order
    assert order["total"] == {"amount": 3998, "currency": "EUR"}
    assert order["items"][0]["sku"] == sku
    assert _captured(gateway, shopper, order_id) == 3998

    charges = httpx.get(f"{step1.psp}/v1/authorizations", params={"reference": order_id}).json()[
        "items"
    ]
    assert [(c["amount"], c["status"]) for c in charges] == [(3998, "captured")]
    assert (
        httpx.get(f"{gateway}/api/v1/products/{product_id}").json()["availability"]["available"]
        == 3
    )
    assert (
        httpx.get(f"{step1.monolith}/api/v1/orders/{order_id}", headers=shopper).status_code == 200
    )


def _settled(base: str, who: dict[str, str], order_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = httpx.get(f"{base}/api/v1/orders/{order_id}", headers=who, timeout=10)
        assert answer.status_code == 200, answer.text
        assert _monolith_served(answer)
        if answer.json()["status"] != "PENDING":
            order: dict[str, Any] = answer.json()
            return order
        time.sleep(0.1)
    raise AssertionError(f"order {order_id} did not settle")


def _captured(base: str, who: dict[str, str], order_id: str) -> int:
    """What the order's payment captured, once the capture (the saga's retriable step after
    the confirmation) is through."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        payment = httpx.get(f"{base}/api/v1/orders/{order_id}", headers=who).json()["payment"]
        if payment["status"] == "captured":
            return int(payment["captured"]["amount"])
        time.sleep(0.1)
    raise AssertionError(f"order {order_id} was never captured")
