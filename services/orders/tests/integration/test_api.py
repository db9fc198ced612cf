"""Orders over HTTP, on SQLite and on PostgreSQL, pricing at a fake catalog over real HTTP
(the chassis ServiceClient through a static registry): the flows and every kind of bad input."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from chassis.messaging import Envelope, InMemoryMessageBus


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def api(
    request: pytest.FixtureRequest, kit: Any, make_settings: Any, catalog: Any
) -> AsyncIterator[Any]:
    overrides: dict[str, Any] = {"max_pending_orders": 3, "pending_retry_after": 9}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    bus = InMemoryMessageBus()
    await bus.start()
    async with kit.serving(make_settings(**overrides), bus=bus, registry=catalog.registry()) as api:
        api.bus, api.catalog, api.kit = bus, catalog, kit
        yield api


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    assert "tok_" not in response.text  # a payment token is never echoed
    return body


async def listing(api: Any, user: str = "alice", **params: str) -> dict[str, Any]:
    response = await api.client.get(
        "/api/v1/orders", params=params, headers=api.kit.principal(user)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_placing_an_order_prices_it_at_catalog_and_answers_202(api: Any, kit: Any) -> None:
    response = await api.place(kit.order_body((kit.MUG, 2), (kit.TEA, 1)))
    assert response.status_code == 202, response.text
    order = response.json()
    assert set(order) == {
        "id",
        "status",
        "reason",
        "cancellation",
        "items",
        "total",
        "created_at",
        "updated_at",
    }
    assert response.headers["location"] == f"/api/v1/orders/{order['id']}"
    assert order["status"] == "PENDING"
    assert order["items"] == [
        {
            "product_id": kit.MUG,
            "sku": "MUG-001",
            "name": "Stoneware Mug",
            "quantity": 2,
            "unit_price": {"amount": 1490, "currency": "EUR"},
        },
        {
            "product_id": kit.TEA,
            "sku": "TEA-042",
            "name": "Sencha 100 g",
            "quantity": 1,
            "unit_price": {"amount": 850, "currency": "EUR"},
        },
    ]
    assert order["total"] == {"amount": 3830, "currency": "EUR"}
    assert order["created_at"].endswith("Z") or order["created_at"].endswith("+00:00")
    assert await api.order(order["id"]) == order
    assert [o["id"] for o in (await listing(api))["items"]] == [order["id"]]


async def test_an_idempotency_key_replays_or_refuses(api: Any, kit: Any) -> None:
    key = str(uuid.uuid4())
    first = await api.place(kit.order_body(), key=key)
    assert first.status_code == 202
    again = await api.place(kit.order_body(), key=key)
    assert (again.status_code, again.content) == (202, first.content)
    assert again.headers["idempotent-replayed"] == "true"
    # the same request with keys in another order is the same request
    reordered = {"payment_token": "tok_visa", "items": kit.order_body()["items"]}
    assert (await api.place(reordered, key=key)).content == first.content
    other = problem(await api.place(kit.order_body((kit.TEA, 5)), key=key), 422)
    assert other["type"] == "/problems/idempotency-key-reused"
    assert len((await listing(api))["items"]) == 1
    # keys are per user
    assert (await api.place(kit.order_body(), key=key, user="bob")).content != first.content

    headers = kit.principal("alice")
    missing = await api.client.post("/api/v1/orders", json=kit.order_body(), headers=headers)
    assert problem(missing, 428)["type"] == "/problems/idempotency-key-required"
    for bad in ("has space", "x" * 256):
        response = await api.client.post(
            "/api/v1/orders", json=kit.order_body(), headers={**headers, "Idempotency-Key": bad}
        )
        problem(response, 422)
    assert len((await listing(api))["items"]) == 1


async def test_concurrent_retries_with_one_key_make_one_order(api: Any, kit: Any) -> None:
    key = str(uuid.uuid4())
    answers = await asyncio.gather(*(api.place(kit.order_body(), key=key) for _ in range(5)))
    assert {r.status_code for r in answers} == {202}
    assert len({r.content for r in answers}) == 1
    assert len((await listing(api))["items"]) == 1


async def test_callers_must_be_signed_in_before_anything_is_read(api: Any, kit: Any) -> None:
    problem(await api.client.post("/api/v1/orders", json={"nonsense": True}), 401)
    problem(await api.client.post("/api/v1/orders", content=b"not json"), 401)
    problem(await api.client.get("/api/v1/orders"), 401)
    problem(await api.client.get(f"/api/v1/orders/{uuid.uuid4()}"), 401)
    problem(await api.client.post(f"/api/v1/orders/{uuid.uuid4()}/cancel"), 401)
    forged = {"x-mercato-principal": "eyJzdWIiOiJhIn0.forged"}
    problem(await api.client.get("/api/v1/orders", headers=forged), 401)
    assert api.catalog.hits == 0


def _bad_bodies(kit: Any) -> list[tuple[Any, str]]:
    good = kit.order_body()
    line = {"product_id": kit.MUG, "quantity": 1}
    return [
        ({**good, "status": "CONFIRMED"}, "status"),
        ({**good, "user_id": "mallory"}, "user_id"),
        ({**good, "total": {"amount": 1, "currency": "EUR"}}, "total"),
        ({**good, "id": str(uuid.uuid4())}, "id"),
        (
            {**good, "items": [{**line, "unit_price": {"amount": 1, "currency": "EUR"}}]},
            "items.0.unit_price",
        ),
        ({**good, "items": [{**line, "sku": "CHEAP"}]}, "items.0.sku"),
        ({**good, "items": []}, "items"),
        ({**good, "items": [line] * 51}, "items"),
        ({**good, "items": "all of them"}, "items"),
        ({**good, "items": [{**line, "quantity": 0}]}, "items.0.quantity"),
        ({**good, "items": [{**line, "quantity": 101}]}, "items.0.quantity"),
        ({**good, "items": [{**line, "quantity": -3}]}, "items.0.quantity"),
        ({**good, "items": [{**line, "quantity": "2"}]}, "items.0.quantity"),
        ({**good, "items": [{**line, "quantity": 2.5}]}, "items.0.quantity"),
        ({**good, "items": [{**line, "quantity": True}]}, "items.0.quantity"),
        ({**good, "items": [{**line, "quantity": 10**30}]}, "items.0.quantity"),
        (
            {**good, "items": [{"product_id": "../../etc/passwd", "quantity": 1}]},
            "items.0.product_id",
        ),
        ({**good, "items": [{"product_id": "", "quantity": 1}]}, "items.0.product_id"),
        ({**good, "items": [{"product_id": "x" * 65, "quantity": 1}]}, "items.0.product_id"),
        ({**good, "items": [{"product_id": "nul\x00", "quantity": 1}]}, "items.0.product_id"),
        ({**good, "items": [{"product_id": "\ud800", "quantity": 1}]}, "items.0.product_id"),
        ({**good, "items": [{"product_id": None, "quantity": 1}]}, "items.0.product_id"),
        ({**good, "items": [{"quantity": 1}]}, "items.0.product_id"),
        ({**good, "payment_token": ""}, "payment_token"),
        ({**good, "payment_token": "tok visa"}, "payment_token"),
        ({**good, "payment_token": "t" * 65}, "payment_token"),
        ({**good, "payment_token": 4242}, "payment_token"),
        ({"items": good["items"]}, "payment_token"),
        ([good], ""),
        ("just a string", ""),
    ]


async def test_bad_bodies_are_4xx_problems_and_store_nothing(api: Any, kit: Any) -> None:
    for body, field in _bad_bodies(kit):
        raw = json.dumps(body).encode()  # a lone surrogate travels escaped, as a client sends it
        response = await api.client.post(
            "/api/v1/orders",
            content=raw,
            headers={
                **kit.principal("alice"),
                "Idempotency-Key": str(uuid.uuid4()),
                "content-type": "application/json",
            },
        )
        details = problem(response, 422)
        if field:
            assert field in {e["field"] for e in details["errors"]}, (field, details)
    for raw in (
        b"",
        b"not json",
        b"[1, 2",
        b"\xff\xfe\x00",
        b'{"items": [{"product_id": "\\ud800"',
    ):
        response = await api.client.post(
            "/api/v1/orders",
            content=raw,
            headers={
                **kit.principal("alice"),
                "Idempotency-Key": "k",
                "content-type": "application/json",
            },
        )
        assert response.status_code in (400, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert (await listing(api))["items"] == []


async def test_orders_catalog_cannot_price_are_refused(api: Any, kit: Any) -> None:
    unknown = str(uuid.uuid4())
    body = problem(await api.place(kit.order_body((kit.MUG, 1), (unknown, 2))), 422)
    assert body["type"] == "/problems/unknown-product"
    assert body["product_ids"] == [unknown] and unknown in body["detail"]
    assert body["errors"][0]["field"] == "items.1.product_id"
    mixed = problem(await api.place(kit.order_body((kit.MUG, 1), (kit.DOLLAR_HAT, 1))), 422)
    assert mixed["currencies"] == ["EUR", "USD"]
    twice = problem(await api.place(kit.order_body((kit.MUG, 1), (kit.MUG, 2))), 422)
    assert twice["type"] == "/problems/duplicate-product"

    api.catalog.down = True
    key = str(uuid.uuid4())
    down = await api.place(kit.order_body(), key=key)
    assert problem(down, 503)["type"] == "/problems/catalog-unavailable"
    assert int(down.headers["retry-after"]) > 0
    api.catalog.down = False
    assert (await api.place(kit.order_body(), key=key)).status_code == 202  # same key, now fine
    assert len((await listing(api))["items"]) == 1


async def test_too_many_pending_orders_are_429(api: Any, kit: Any) -> None:
    for _ in range(3):
        assert (await api.place()).status_code == 202
    throttled = await api.place()
    assert problem(throttled, 429)["type"] == "/problems/too-many-pending-orders"
    assert throttled.headers["retry-after"] == "9"
    assert (await api.place(user="bob")).status_code == 202


async def test_another_users_order_is_not_found(api: Any, kit: Any) -> None:
    mine = (await api.place()).json()
    for path in (f"/api/v1/orders/{mine['id']}", f"/api/v1/orders/{uuid.uuid4()}"):
        problem(await api.client.get(path, headers=kit.principal("mallory")), 404)
        problem(await api.client.post(f"{path}/cancel", headers=kit.principal("mallory")), 404)
    long_id = "x" * 65
    response = await api.client.get(f"/api/v1/orders/{long_id}", headers=kit.principal("alice"))
    assert response.status_code in (404, 422)
    assert (await listing(api, "mallory"))["items"] == []
    assert (await api.order(mine["id"]))["status"] == "PENDING"


async def test_listing_pages_newest_first(api: Any, kit: Any) -> None:
    placed = [(await api.place(user="carol")).json()["id"] for _ in range(3)]
    first = await listing(api, "carol", limit="2")
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = await listing(api, "carol", limit="2", cursor=first["next_cursor"])
    assert rest["next_cursor"] is None
    seen = [o["id"] for o in first["items"] + rest["items"]]
    assert sorted(seen) == sorted(placed)
    created = [o["created_at"] for o in first["items"] + rest["items"]]
    assert created == sorted(created, reverse=True)
    for query in (
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=!!!",
        "cursor=WzEsMiwzXQ",
        "cursor=WyJub3QgYSBkYXRlIiwgIngiXQ",
    ):
        response = await api.client.get(f"/api/v1/orders?{query}", headers=kit.principal("carol"))
        assert response.status_code in (400, 422), (query, response.text)


async def test_cancelling_pending_is_deferred_and_finished_orders_refuse(
    api: Any, kit: Any
) -> None:
    pending = (await api.place()).json()
    url = f"/api/v1/orders/{pending['id']}/cancel"
    first = await api.client.post(url, headers=kit.principal("alice"))
    assert first.status_code == 202
    assert (first.json()["status"], first.json()["cancellation"]) == ("PENDING", "requested")
    assert (await api.client.post(url, headers=kit.principal("alice"))).status_code == 202

    doomed = (await api.place()).json()
    failed = Envelope(
        type="inventory.stock.reservation_failed.v1",
        source="inventory",
        subject=doomed["id"],
        data={"order_id": doomed["id"], "reason": "out_of_stock", "skus": ["MUG-001"]},
    )
    await api.bus.publish(failed)
    rejected = await api.settled(doomed["id"], "REJECTED")
    assert rejected["reason"] == "out_of_stock"
    refused = problem(
        await api.client.post(
            f"/api/v1/orders/{doomed['id']}/cancel", headers=kit.principal("alice")
        ),
        409,
    )
    assert refused["type"] == "/problems/order-not-cancellable"


async def test_internal_audit_and_sagas_are_for_admins_only(api: Any, kit: Any) -> None:
    order = (await api.place()).json()
    for path in ("/internal/audit/orders", "/internal/sagas", f"/internal/sagas/{uuid.uuid4()}"):
        problem(await api.client.get(path), 401)
        problem(await api.client.get(path, headers=kit.principal("alice", "customer")), 403)
    admin = kit.principal("ops", "admin")
    audit = (await api.client.get("/internal/audit/orders", headers=admin)).json()
    assert audit["saga_timeout_seconds"] > 0
    [item] = audit["items"]
    assert item["id"] == order["id"] and item["user_id"] == "alice"
    assert item["status"] == "PENDING" and item["reason"] is None
    assert item["total"] == {"amount": 3830, "currency": "EUR"}
    assert item["lines"][0] == {
        "product_id": kit.MUG,
        "sku": "MUG-001",
        "quantity": 2,
        "unit_price": {"amount": 1490, "currency": "EUR"},
    }
    assert item["saga"]["status"] == "RUNNING" and item["saga"]["step"] == "reserve_stock"

    sagas = (await api.client.get("/internal/sagas?status=RUNNING", headers=admin)).json()
    [summary] = sagas["items"]
    assert summary["correlation_id"] == order["id"] and "data" not in summary
    detail = (await api.client.get(f"/internal/sagas/{summary['id']}", headers=admin)).json()
    assert detail["data"]["payment_token"] == "[redacted]"
    assert [e["event"] for e in detail["history"]] == ["started", "command_sent"]
    assert detail["history"][1]["message_type"] == "inventory.reserve_stock.v1"
    problem(await api.client.get("/internal/sagas?status=BOGUS", headers=admin), 422)
    problem(await api.client.get(f"/internal/sagas/{uuid.uuid4()}", headers=admin), 404)
    empty = (await api.client.get("/internal/sagas?status=COMPLETED", headers=admin)).json()
    assert empty == {"items": [], "next_cursor": None}


async def test_health_and_readiness(api: Any, kit: Any) -> None:
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


async def test_checkouts_are_shed_with_429_while_those_in_flight_run_late(
    kit: Any, make_settings: Any, catalog: Any
) -> None:
    bus = InMemoryMessageBus()
    await bus.start()
    settings = make_settings(checkout_floor=3, checkout_max_wait=0.5)
    async with kit.serving(settings, bus=bus, registry=catalog.registry()) as api:
        first = await api.place(user="alice")
        assert first.status_code == 202
        for user in ("bob", "carol"):
            assert (await api.place(user=user)).status_code == 202
        await asyncio.sleep(1.2)  # no saga participant answers here: all three are late now
        shed = await api.place(user="dave")
        assert problem(shed, 429)["type"] == "/problems/checkout-busy"
        assert int(shed.headers["retry-after"]) >= 1
        # an accepted order asked again is answered again, not shed
        again = await api.place(user="alice", key=first.request.headers["idempotency-key"])
        assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
