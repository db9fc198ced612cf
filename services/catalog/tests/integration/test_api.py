"""Catalog over HTTP, on SQLite and on PostgreSQL: the happy paths and every kind of bad input."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from catalog.bootstrap import build_app
from catalog.settings import CatalogSettings
from chassis import InternalTokenCodec, Principal

SECRET = "catalog-test-secret"


def admin() -> dict[str, str]:
    """Signed per request: a module-level token would expire during a long test run."""
    token = InternalTokenCodec(SECRET.encode()).issue(Principal("a", frozenset({"admin"})))
    return {"x-mercato-principal": token}


def customer() -> dict[str, str]:
    token = InternalTokenCodec(SECRET.encode()).issue(Principal("c", frozenset({"customer"})))
    return {"x-mercato-principal": token}


def mug(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "sku": "MUG-001",
        "name": "Stoneware Mug",
        "description": "A mug.",
        "category": "kitchen",
        "price": {"amount": 1490, "currency": "EUR"},
        "image_url": "https://images.example/mug.jpg",
    }
    body.update(overrides)
    return body


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/catalog.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    settings = CatalogSettings(
        database_url=url,
        internal_secret=SECRET,
        data_dir=tmp_path,
        environment="test",
        broker_url="memory://",
    )
    app = build_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://catalog"
        ) as client,
    ):
        yield client


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


async def test_create_get_update_list(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v1/products", json=mug(), headers=admin())
    assert created.status_code == 201, created.text
    product = created.json()
    assert created.headers["location"] == f"/api/v1/products/{product['id']}"
    assert product["price"] == {"amount": 1490, "currency": "EUR"}
    assert product["created_at"].endswith("Z")

    assert (await api.get(f"/api/v1/products/{product['id']}")).json() == product
    assert (await api.get("/api/v1/products/sku/MUG-001")).json() == product

    patched = await api.patch(
        f"/api/v1/products/{product['id']}",
        json={"price": {"amount": 1290, "currency": "EUR"}, "image_url": None},
        headers=admin(),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["price"]["amount"] == 1290
    assert patched.json()["image_url"] is None
    assert patched.json()["name"] == "Stoneware Mug"

    listing = (await api.get("/api/v1/products", params={"category": "kitchen"})).json()
    assert [p["sku"] for p in listing["items"]] == ["MUG-001"]
    assert listing["next_cursor"] is None
    categories = (await api.get("/api/v1/categories")).json()
    assert categories == {
        "items": [{"slug": "kitchen", "name": "Kitchen", "product_count": 1}],
        "next_cursor": None,
    }


async def test_cursor_pagination_walks_all_products(api: httpx.AsyncClient) -> None:
    for n in range(7):
        body = mug(
            sku=f"P-{n}", name=f"Product {n}", price={"amount": 100 * (7 - n), "currency": "EUR"}
        )
        assert (await api.post("/api/v1/products", json=body, headers=admin())).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", "sort": "price", **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/v1/products", params=params)).json()
        seen += [p["sku"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"P-{n}" for n in reversed(range(7))]


async def test_only_admins_write(api: httpx.AsyncClient) -> None:
    problem(await api.post("/api/v1/products", json=mug()), 401)
    problem(await api.post("/api/v1/products", json=mug(), headers=customer()), 403)
    problem(await api.patch("/api/v1/products/x", json={"name": "n"}, headers=customer()), 403)
    assert (await api.get("/api/v1/products")).json()["items"] == []


async def test_duplicate_sku_is_a_conflict_and_keeps_the_first(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/products", json=mug(), headers=admin())
    body = problem(await api.post("/api/v1/products", json=mug(name="Other"), headers=admin()), 409)
    assert body["sku"] == "MUG-001"
    assert (await api.get("/api/v1/products/sku/MUG-001")).json()["name"] == "Stoneware Mug"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (mug(price={"amount": "1490", "currency": "EUR"}), "price.amount"),
        (mug(price={"amount": 14.9, "currency": "EUR"}), "price.amount"),
        (mug(price={"amount": -1, "currency": "EUR"}), "price.amount"),
        (mug(price={"amount": 10**30, "currency": "EUR"}), "price.amount"),
        (mug(price={"amount": 100, "currency": "euro"}), "price.currency"),
        (mug(price=1490), "price"),
        (mug(name=""), "name"),
        (mug(name="x" * 201), "name"),
        (mug(name="line\nbreak"), "name"),
        (mug(name="nul\x00byte"), "name"),
        (mug(name="lone \ud800 surrogate"), "name"),
        (mug(category="Not A Slug"), "category"),
        (mug(sku="has space"), "sku"),
        (mug(image_url="javascript:alert(1)"), "image_url"),
        (mug(image_url="file:///etc/passwd"), "image_url"),
        (mug(id="chosen-by-client"), "id"),
        (mug(created_at="2020-01-01T00:00:00Z"), "created_at"),
        ({k: v for k, v in mug().items() if k != "sku"}, "sku"),
        ({k: v for k, v in mug().items() if k != "price"}, "price"),
    ],
)
async def test_bad_product_bodies_are_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    # json.dumps escapes a lone surrogate as \\ud800, as a hostile client would send it
    raw = json.dumps(body).encode()
    headers = {**admin(), "content-type": "application/json"}
    details = problem(await api.post("/api/v1/products", content=raw, headers=headers), 422)
    assert field in {e["field"] for e in details["errors"]}  # type: ignore[union-attr, index]
    assert (await api.get("/api/v1/products")).json()["items"] == []


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[1, 2", b"\xff\xfe\x00", b'{"sku": "A", "name": "\\ud800"'],
)
async def test_non_json_bodies_are_4xx(api: httpx.AsyncClient, content: bytes) -> None:
    headers = {**admin(), "content-type": "application/json"}
    response = await api.post("/api/v1/products", content=content, headers=headers)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_ten_megabyte_body_is_413(api: httpx.AsyncClient) -> None:
    body = b'{"sku": "' + b"A" * 10_000_000 + b'"}'
    headers = {**admin(), "content-type": "application/json"}
    problem(await api.post("/api/v1/products", content=body, headers=headers), 413)


async def test_patch_refuses_nulls_for_required_fields_and_unknown_fields(
    api: httpx.AsyncClient,
) -> None:
    product = (await api.post("/api/v1/products", json=mug(), headers=admin())).json()
    url = f"/api/v1/products/{product['id']}"
    problem(await api.patch(url, json={"name": None}, headers=admin()), 422)
    problem(await api.patch(url, json={"sku": "NEW"}, headers=admin()), 422)
    problem(await api.patch(url, json={"price": {"amount": 1}}, headers=admin()), 422)
    assert (await api.get(url)).json() == product
    problem(await api.patch("/api/v1/products/missing", json={"name": "n"}, headers=admin()), 404)


@pytest.mark.parametrize(
    "query",
    [
        "limit=1000000",
        "limit=0",
        "limit=-5",
        "limit=ten",
        "sort=price%3B%20DROP%20TABLE%20products",
        "sort=popularity",
        "cursor=!!!not-a-cursor!!!",
        "cursor=WzEsMiwzXQ",  # valid base64 JSON, wrong shape
        "cursor=WyJhIl0",  # valid base64 JSON, too short
        "category=..%2Fetc",
        "q=nul%00",
        "q=" + "x" * 201,
    ],
)
async def test_bad_query_parameters_are_4xx(api: httpx.AsyncClient, query: str) -> None:
    response = await api.get(f"/api/v1/products?{query}")
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("query", ["q=%ED%A0%80", "q=%FF%FE", "category=%C3", "sku=%80"])
async def test_undecodable_query_bytes_never_fail(api: httpx.AsyncClient, query: str) -> None:
    # Starlette decodes invalid UTF-8 as U+FFFD: a harmless search, never a 500.
    response = await api.get(f"/api/v1/products?{query}")
    assert response.status_code in (200, 422), response.text


@pytest.mark.parametrize(
    "q", ["%", "_", "\\", "'", '"', "Ω≈ç√∫", "🙂", "ｆｕｌｌｗｉｄｔｈ", "e\u0301", "   ", "ß"]
)
async def test_unicode_and_wildcard_searches_never_fail(api: httpx.AsyncClient, q: str) -> None:
    created = await api.post(
        "/api/v1/products", json=mug(name="Crème brûlée dish 🙂"), headers=admin()
    )
    assert created.status_code == 201
    response = await api.get("/api/v1/products", params={"q": q})
    assert response.status_code == 200, response.text


async def test_search_matches_composed_and_decomposed_accents(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/api/v1/products", json=mug(name="Crème brûlée dish"), headers=admin()
    )
    assert created.status_code == 201
    composed = await api.get("/api/v1/products", params={"q": "crème"})
    decomposed = await api.get("/api/v1/products", params={"q": "cre\u0300me"})
    assert len(composed.json()["items"]) == 1
    assert len(decomposed.json()["items"]) == 1


async def test_unknown_product_is_404(api: httpx.AsyncClient) -> None:
    body = problem(await api.get("/api/v1/products/does-not-exist"), 404)
    assert body["type"] == "/problems/product-not-found"
