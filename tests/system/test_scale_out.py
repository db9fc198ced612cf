"""Scale-out on one machine: two instances of every service under `mercato up`, each service
on its own PostgreSQL database, as production runs them (DESIGN.md §2).

A checkout workload goes through both gateway instances (as a load balancer in front of them
would send it), and then the figures every instance exports show that:

- HTTP work spreads over the instances of every service, the gateway's and the services'
  own calls alike (orders → catalog, payments → psp, the gateway's composed reads);
- the instances of a service consume as one group: each message is handled by one of them
  (their acknowledged deliveries add up to the rows of their shared inbox, none a duplicate),
  and both take a share;
- the outbox relays of a service's instances all publish, and no event is published twice:
  the rows each relay reports published add up exactly to the rows marked sent.

And the platform's own audit (`mercato check`) finds every invariant holding.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mercato_cli.local import LocalPlatform

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.integration]

PASSWORD = "scale out correct horse battery"
WITH_DATABASE = ["catalog", "identity", "inventory", "orders", "payments", "notifications", "psp"]
SERVICES = [*WITH_DATABASE, "gateway"]
REPLICAS = 2
SHOPPERS = 12
ORDERS = 72
QUIET_ROUTES = {"/livez", "/readyz", "/metrics"}


class Platform(LocalPlatform):
    gateways: list[str]
    databases: dict[str, str]  # service → asyncpg DSN of its own database


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, postgres_databases: Any
) -> Iterator[Platform]:
    urls = {service: postgres_databases.new(service) for service in WITH_DATABASE}
    env = {
        **os.environ,
        # Every request and every order is wanted here: shedding has its own tests.
        "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
        "GATEWAY_RATE_LIMIT_BURST": "100000",
        "ORDERS_CHECKOUT_FLOOR": "100000",
    }
    for service, url in urls.items():
        env[f"{service.upper()}_DATABASE_URL"] = url
    replicas = ",".join(f"{service}={REPLICAS}" for service in SERVICES)
    platform = Platform(tmp_path_factory.mktemp("scale-out") / "data", env=env,
                        args=["--no-seed", "--replicas", replicas])  # fmt: skip
    platform.databases = {
        s: url.replace("postgresql+asyncpg://", "postgresql://") for s, url in urls.items()
    }
    with platform.start(instances=len(SERVICES) * REPLICAS, timeout=300):
        platform.gateways = [r["url"] for r in platform.status() if r["service"] == "gateway"]
        yield platform


# -- what the instances say about themselves -------------------------------------------------


def samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def http_requests(url: str) -> float:
    return sum(
        value
        for name, labels, value in samples(url)
        if name == "mercato_http_requests_total" and labels.get("route") not in QUIET_ROUTES
    )


def by_instance(platform: Platform) -> dict[str, list[dict[str, Any]]]:
    services: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in platform.status():
        services[row["service"]].append(row)
    return services


async def database_counts(dsn: str) -> tuple[int, Counter[str]]:
    """Outbox rows marked sent, and inbox rows per consumer, of one service's database."""
    connection = await asyncpg.connect(dsn)
    try:
        if await connection.fetchval("SELECT to_regclass('messaging_outbox')") is None:
            return 0, Counter()  # a service that neither publishes nor consumes (psp)
        sent = await connection.fetchval(
            "SELECT count(*) FROM messaging_outbox WHERE sent_at IS NOT NULL"
        )
        rows = await connection.fetch(
            "SELECT consumer, count(*) AS n FROM messaging_inbox GROUP BY consumer"
        )
    finally:
        await connection.close()
    return int(sent), Counter({row["consumer"]: int(row["n"]) for row in rows})


# -- the workload ------------------------------------------------------------------------------


async def workload(platform: Platform) -> list[str]:
    """Shoppers register, browse, order and follow their orders to CONFIRMED, through both
    gateways in turn. Returns the order ids."""
    gateways = platform.gateways
    turn = iter(range(10**9))

    def gateway() -> str:
        return gateways[next(turn) % len(gateways)]

    async with httpx.AsyncClient(timeout=30) as client:
        password = (platform.data_dir / "secrets" / "admin_password").read_text().strip()
        answer = await client.post(f"{gateway()}/api/v1/auth/token",
                                   json={"email": "admin@mercato.local", "password": password})  # fmt: skip
        admin = {"authorization": f"Bearer {answer.json()['access_token']}"}
        products = []
        for n in range(4):
            sku = f"SO-{uuid.uuid4().hex[:8]}"
            body = {"sku": sku, "name": f"Scale item {n}", "category": "kitchen",
                    "price": {"amount": 1500 + n, "currency": "EUR"}}  # fmt: skip
            created = await client.post(f"{gateway()}/api/v1/products", json=body, headers=admin)
            assert created.status_code == 201, created.text
            for _ in range(200):  # inventory makes the stock record from catalog's event
                stocked = await client.put(
                    f"{gateway()}/api/v1/inventory/stock/{sku}", headers=admin,
                    json={"action": "adjust", "available": 10_000, "reason": "scale test"},
                )  # fmt: skip
                if stocked.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert stocked.status_code == 200, stocked.text
            products.append(created.json()["id"])

        async def shopper() -> dict[str, str]:
            email = f"so-{uuid.uuid4().hex[:10]}@example.com"
            registered = await client.post(f"{gateway()}/api/v1/auth/register",
                                           json={"email": email, "password": PASSWORD,
                                                 "name": "Scale"})  # fmt: skip
            assert registered.status_code == 201, registered.text
            tokens = await client.post(f"{gateway()}/api/v1/auth/token",
                                       json={"email": email, "password": PASSWORD})  # fmt: skip
            return {"authorization": f"Bearer {tokens.json()['access_token']}"}

        shoppers = await asyncio.gather(*(shopper() for _ in range(SHOPPERS)))

        async def order(n: int) -> str:
            who = shoppers[n % SHOPPERS]
            product = products[n % len(products)]
            seen = await client.get(f"{gateway()}/api/v1/products/{product}", headers=who)
            assert seen.status_code == 200, seen.text
            placed = await client.post(
                f"{gateway()}/api/v1/orders", headers={**who, "idempotency-key": uuid.uuid4().hex},
                json={"items": [{"product_id": product, "quantity": 1}],
                      "payment_token": "tok_visa"},
            )  # fmt: skip
            assert placed.status_code == 202, placed.text
            order_id = str(placed.json()["id"])
            deadline = time.monotonic() + 60
            while True:
                followed = await client.get(f"{gateway()}/api/v1/orders/{order_id}", headers=who)
                assert followed.status_code == 200, followed.text
                if followed.json()["status"] == "CONFIRMED":
                    break
                assert followed.json()["status"] == "PENDING", followed.text
                assert time.monotonic() < deadline, f"{order_id} still pending"
                await asyncio.sleep(0.3)
            mail = await client.get(f"{gateway()}/api/v1/notifications", headers=who)
            assert mail.status_code == 200, mail.text
            return order_id

        gate = asyncio.Semaphore(8)

        async def bounded(n: int) -> str:
            async with gate:
                return await order(n)

        return await asyncio.gather(*(bounded(n) for n in range(ORDERS)))


async def quiescent(platform: Platform, timeout: float = 60) -> None:
    """Every outbox empty (the events of the last confirmations are on their way)."""
    deadline = time.monotonic() + timeout
    while True:
        backlog = 0.0
        for rows in by_instance(platform).values():
            for row in rows:
                backlog += sum(
                    v for n, _, v in samples(row["url"]) if n == "mercato_outbox_backlog"
                )
        if backlog == 0:
            await asyncio.sleep(2)  # the consumers of the last events
            return
        assert time.monotonic() < deadline, f"outbox backlog stays at {backlog}"
        await asyncio.sleep(0.5)


def test_work_spreads_over_every_instance_and_nothing_is_done_twice(platform: Platform) -> None:
    services = by_instance(platform)
    assert {s: len(rows) for s, rows in services.items()} == dict.fromkeys(SERVICES, REPLICAS)
    before = {row["instance"]: http_requests(row["url"]) for rows in services.values()
              for row in rows}  # fmt: skip

    order_ids = asyncio.run(workload(platform))
    assert len(set(order_ids)) == ORDERS
    asyncio.run(quiescent(platform))
    assert all(i["restarts"] == 0 for i in platform.state()["instances"])

    # HTTP: every instance of every service took a share of the requests.
    spread: dict[str, dict[str, float]] = {}
    for service, rows in services.items():
        spread[service] = {r["instance"]: http_requests(r["url"]) - before[r["instance"]]
                           for r in rows}  # fmt: skip
    for service, shares in spread.items():
        total = sum(shares.values())
        assert total >= 2 * SHOPPERS, (service, spread)  # identity: one sign-up and in each
        assert min(shares.values()) >= 0.2 * total, (service, spread)

    # Messages and events, per service: from its instances' counters and its own database.
    report: dict[str, Any] = {}
    for service in WITH_DATABASE:
        sent, inbox = asyncio.run(database_counts(platform.databases[service]))
        published: dict[str, float] = {}
        acked: dict[str, Counter[str]] = {}
        duplicates = 0.0
        for row in services[service]:
            found = samples(row["url"])
            published[row["instance"]] = sum(
                v for n, _, v in found if n == "mercato_outbox_published_total"
            )
            acked[row["instance"]] = Counter()
            for name, labels, value in found:
                if name == "mercato_messages_consumed_total" and labels["outcome"] == "ack":
                    acked[row["instance"]][labels["consumer"]] += int(value)
                if name == "mercato_inbox_duplicates_total":
                    duplicates += value
        report[service] = {"sent": sent, "published": published, "inbox": dict(inbox),
                           "acked": {i: dict(c) for i, c in acked.items()}}  # fmt: skip

        # No event published twice: the relays' acknowledged publications are the sent rows.
        assert sum(published.values()) == sent, report[service]
        # No message handled twice, and handled in one group.
        assert duplicates == 0, report[service]
        for consumer, rows_in_inbox in inbox.items():
            handled = [c[consumer] for c in acked.values()]
            assert sum(handled) == rows_in_inbox, (consumer, report[service])
            if rows_in_inbox >= 40:  # a busy consumer: both instances take a share
                assert min(handled) >= 0.15 * rows_in_inbox, (consumer, report[service])

    # The services the checkout runs through each published from both instances' relays.
    for service in ("orders", "inventory", "payments"):
        shares = report[service]["published"]
        assert min(shares.values()) >= 0.15 * sum(shares.values()), report[service]
    # Every order's saga ran its course across the instances (a command and reply each way).
    assert sum(report["inventory"]["inbox"].values()) >= ORDERS, report["inventory"]
    assert sum(report["payments"]["inbox"].values()) >= ORDERS, report["payments"]
    print(json.dumps({"spread": spread, "messaging": report}))  # shown with -s

    checked = json.loads(platform.mercato("check", "--json").stdout)
    assert checked["violations"] == [], checked
