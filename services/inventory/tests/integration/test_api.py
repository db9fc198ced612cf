"""Inventory over HTTP, on SQLite and PostgreSQL: the happy paths, admin-only writes, and
every kind of bad input answered with a 4xx problem, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:  # conftest is pytest's, not importable at run time
    from conftest import Harness, HarnessFactory

RESERVE = "inventory.reserve_stock.v1"


@pytest.fixture
async def api(start_harness: HarnessFactory, database_url: str) -> AsyncIterator[Harness]:
    async with start_harness(database_url=database_url, initial_stock=20) as harness:
        await harness.product("MUG-001")
        await harness.product("TEE-002")
        yield harness


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


async def test_availability_answers_each_sku_once_in_order(api: Harness) -> None:
    await api.command(RESERVE, {"order_id": "o1", "lines": [{"sku": "MUG-001", "quantity": 20}]})
    response = await api.client.get(
        "/api/v1/inventory/availability", params={"skus": "TEE-002,MUG-001,GHOST,TEE-002"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "items": [
            {"sku": "TEE-002", "available": 20, "in_stock": True},
            {"sku": "MUG-001", "available": 0, "in_stock": False},
            {"sku": "GHOST", "available": 0, "in_stock": False},
        ]
    }


async def test_admins_restock_and_adjust_and_every_change_is_in_the_audit(api: Harness) -> None:
    admin = api.headers("admin")
    url = "/api/v1/inventory/stock/MUG-001"
    restocked = await api.client.put(url, json={"action": "restock", "quantity": 5}, headers=admin)
    assert restocked.status_code == 200, restocked.text
    assert restocked.json()["available"] == 25
    adjusted = await api.client.put(
        url, json={"action": "adjust", "available": 22, "reason": "cycle count"}, headers=admin
    )
    assert adjusted.status_code == 200, adjusted.text
    body = adjusted.json()
    assert (body["available"], body["reserved"], body["committed"], body["in_stock"]) == (
        22,
        0,
        0,
        True,
    )
    assert body["product_id"] == "p-MUG-001"
    assert body["updated_at"].endswith("Z")
    assert (await api.client.get(url, headers=admin)).json() == body

    await api.client.put(
        url, json={"action": "adjust", "available": 0, "reason": "flood"}, headers=admin
    )
    audit = await api.audit()
    [mug] = [s for s in audit["skus"] if s["sku"] == "MUG-001"]
    assert mug == {
        "sku": "MUG-001",
        "initial": 20,
        "restocked": 5,
        "adjusted": -25,
        "available": 0,
        "reserved": 0,
        "committed": 0,
    }


async def test_the_audit_lists_reservations_with_their_lines(api: Harness) -> None:
    await api.command(
        RESERVE,
        {
            "order_id": "o1",
            "lines": [{"sku": "MUG-001", "quantity": 2}, {"sku": "TEE-002", "quantity": 1}],
        },
    )
    await api.command(RESERVE, {"order_id": "o2", "lines": [{"sku": "MUG-001", "quantity": 99}]})
    audit = await api.audit()
    assert len(audit["reservations"]) == 1  # the failed one holds nothing
    [reservation] = audit["reservations"]
    assert reservation["order_id"] == "o1"
    assert reservation["status"] == "held"
    assert reservation["lines"] == [
        {"sku": "MUG-001", "quantity": 2},
        {"sku": "TEE-002", "quantity": 1},
    ]
    assert reservation["expires_at"] == "2026-12-01T12:15:00Z"


async def test_only_admins_write_or_read_levels_and_the_audit(api: Harness) -> None:
    url = "/api/v1/inventory/stock/MUG-001"
    body = {"action": "restock", "quantity": 5}
    customer = api.headers("customer")
    problem(await api.client.put(url, json=body), 401)
    problem(await api.client.put(url, json=body, headers=customer), 403)
    # authorization comes before validation: nothing about the schema leaks
    problem(await api.client.put(url, json={"nonsense": True}, headers=customer), 403)
    problem(await api.client.get(url), 401)
    problem(await api.client.get(url, headers=customer), 403)
    problem(await api.client.get("/internal/audit/stock"), 401)
    problem(await api.client.get("/internal/audit/stock", headers=customer), 403)
    forged = {"x-mercato-principal": "e30.bm90LWEtc2lnbmF0dXJl"}
    problem(await api.client.put(url, json=body, headers=forged), 401)
    assert (await api.level("MUG-001")) == (20, 0, 0)


async def test_unknown_skus_are_404(api: Harness) -> None:
    admin = api.headers("admin")
    url = "/api/v1/inventory/stock/GHOST"
    body = problem(
        await api.client.put(url, json={"action": "restock", "quantity": 1}, headers=admin), 404
    )
    assert body["type"] == "/problems/unknown-sku"
    assert body["sku"] == "GHOST"
    problem(await api.client.get(url, headers=admin), 404)
    problem(
        await api.client.put(
            url, json={"action": "adjust", "available": 1, "reason": "x"}, headers=admin
        ),
        404,
    )


# Each list runs in one test (one app per database): the cases are many, the set-up is not free.
BAD_CHANGES: list[object] = [
    {"action": "restock", "quantity": 0},
    {"action": "restock", "quantity": -3},
    {"action": "restock", "quantity": "5"},
    {"action": "restock", "quantity": 2.5},
    {"action": "restock", "quantity": 10**30},
    {"action": "restock"},
    {"action": "restock", "quantity": 1, "extra": 1},
    {"action": "adjust", "available": -1, "reason": "r"},
    {"action": "adjust", "available": 10**12, "reason": "r"},
    {"action": "adjust", "available": 5},
    {"action": "adjust", "available": 5, "reason": ""},
    {"action": "adjust", "available": 5, "reason": "   "},
    {"action": "adjust", "available": 5, "reason": "two\nlines"},
    {"action": "adjust", "available": 5, "reason": "nul\x00"},
    {"action": "adjust", "available": 5, "reason": "x" * 201},
    {"action": "adjust", "available": 5, "reason": "lone \ud800"},
    {"action": "steal", "quantity": 5},
    {"quantity": 5},
    [],
    "restock",
    None,
]
NOT_JSON = [b"", b"not json", b"{", b"\xff\xfe", b'{"action": "restock", "quantity": 1']
BAD_PATHS = [
    "/api/v1/inventory/stock/has%20space",
    "/api/v1/inventory/stock/..%2Fetc",
    "/api/v1/inventory/stock/" + "x" * 65,
    "/api/v1/inventory/stock/%00",
    "/api/v1/inventory/stock/%FF",
]
BAD_QUESTIONS = [
    "",
    "skus=",
    "skus=,,,",
    "skus=has%20space",
    "skus=%00",
    "skus=%FF%FE",
    "skus=" + ",".join(f"S{n}" for n in range(101)),
    "skus=" + "x" * 8000,
    "skus=A;DROP%20TABLE%20stock",
]


async def test_bad_stock_changes_are_422_and_change_nothing(api: Harness) -> None:
    headers = {**api.headers("admin"), "content-type": "application/json"}
    for body in BAD_CHANGES:
        # json.dumps escapes a lone surrogate as \\ud800, as a hostile client would send it
        content = json.dumps(body).encode()
        response = await api.client.put(
            "/api/v1/inventory/stock/MUG-001", content=content, headers=headers
        )
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    for content in NOT_JSON:
        response = await api.client.put(
            "/api/v1/inventory/stock/MUG-001", content=content, headers=headers
        )
        assert response.status_code in (400, 422), (content, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await api.level("MUG-001")) == (20, 0, 0)


async def test_malformed_skus_in_the_path_are_4xx(api: Harness) -> None:
    for path in BAD_PATHS:
        response = await api.client.put(
            path, json={"action": "restock", "quantity": 1}, headers=api.headers("admin")
        )
        assert 400 <= response.status_code < 500, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_bad_availability_questions_are_422(api: Harness) -> None:
    for query in BAD_QUESTIONS:
        response = await api.client.get(f"/api/v1/inventory/availability?{query}")
        assert response.status_code == 422, (query, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"], query


async def test_a_ten_megabyte_body_is_413(api: Harness) -> None:
    content = b'{"action": "adjust", "available": 1, "reason": "' + b"a" * 10_000_000 + b'"}'
    response = await api.client.put(
        "/api/v1/inventory/stock/MUG-001",
        content=content,
        headers={**api.headers("admin"), "content-type": "application/json"},
    )
    problem(response, 413)


async def test_readiness_names_database_broker_and_grpc(api: Harness) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "grpc": "ok"}
