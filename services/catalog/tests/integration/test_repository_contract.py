"""One contract for ProductRepository, run against the fake, SQLite and PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from catalog.adapters.memory import InMemoryCatalogUnitOfWork
from catalog.adapters.repository import SqlCatalogUnitOfWork, sort_value
from catalog.bootstrap import migrate
from catalog.domain.model import Price, Product, new_product
from catalog.service_layer.ports import CatalogUnitOfWork, ProductQuery
from catalog.settings import CatalogSettings
from chassis import Database

UowFactory = Callable[[], CatalogUnitOfWork]


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.integration)]
)
async def uow_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UowFactory]:
    if request.param == "memory":
        shared = InMemoryCatalogUnitOfWork()
        yield lambda: shared
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/catalog.db"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate(CatalogSettings(database_url=url))
    database = Database(url)
    try:
        yield lambda: SqlCatalogUnitOfWork(database, write=True)
    finally:
        await database.dispose()


def product(n: int, *, name: str, amount: int, category: str = "kitchen") -> Product:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return new_product(
        sku=f"SKU-{n}",
        name=name,
        description=f"description {n}",
        category=category,
        price=Price(amount, "EUR"),
        image_url=None,
        now=base + timedelta(minutes=n),
    )


async def store(factory: UowFactory, *products: Product) -> None:
    async with factory() as uow:
        for p in products:
            await uow.products.ensure_category(p.category, p.category.title())
            await uow.products.add(p)
        await uow.commit()


async def test_add_get_and_save_round_trip(uow_factory: UowFactory) -> None:
    original = product(1, name="Café Crème Mug", amount=1299)
    await store(uow_factory, original)
    async with uow_factory() as uow:
        assert await uow.products.get(original.id) == original
        assert await uow.products.get_by_sku("SKU-1") == original
        assert await uow.products.get("missing") is None
        changed = original.apply({"price": Price(1099, "EUR")}, now=datetime.now(UTC))
        await uow.products.save(changed)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.products.get(original.id) == changed


async def test_uncommitted_work_is_rolled_back(uow_factory: UowFactory) -> None:
    kept = product(1, name="Kept", amount=100)
    await store(uow_factory, kept)
    async with uow_factory() as uow:
        await uow.products.ensure_category("kitchen", "Kitchen")
        await uow.products.add(product(2, name="Lost", amount=100))
    async with uow_factory() as uow:
        assert await uow.products.get_by_sku("SKU-2") is None


@pytest.mark.parametrize("sort", ["name", "-name", "price", "-price", "created_at", "-created_at"])
async def test_keyset_pages_cover_everything_once_in_order(
    uow_factory: UowFactory, sort: str
) -> None:
    names = ["banana", "Apple", "cherry", "apple pie", "Date", "elder", "fig", "Grape"]
    items = [product(n, name=name, amount=(n * 7) % 5 * 100) for n, name in enumerate(names)]
    await store(uow_factory, *items)

    seen: list[Product] = []
    after = None
    while True:
        async with uow_factory() as uow:
            page = await uow.products.find(ProductQuery(limit=3, sort=sort, after=after))  # type: ignore[arg-type]
        seen.extend(page)
        if len(page) < 3:
            break
        after = (sort_value(page[-1], sort), page[-1].id)

    assert sorted(p.id for p in seen) == sorted(p.id for p in items)
    keys = [(sort_value(p, sort), p.id) for p in seen]
    assert keys == sorted(keys, reverse=sort.startswith("-"))  # type: ignore[type-var]


async def test_filters_by_category_and_searches_names_case_insensitively(
    uow_factory: UowFactory,
) -> None:
    await store(
        uow_factory,
        product(1, name="Straße Map", amount=1, category="books"),
        product(2, name="100% Cotton_Tee", amount=1, category="apparel"),
        product(3, name="Émile's Mug", amount=1, category="kitchen"),
    )
    async with uow_factory() as uow:
        books = await uow.products.find(ProductQuery(limit=10, category="books"))
        assert [p.name for p in books] == ["Straße Map"]
        assert [
            p.name for p in await uow.products.find(ProductQuery(limit=10, text="STRASSE"))
        ] == ["Straße Map"]
        assert [p.name for p in await uow.products.find(ProductQuery(limit=10, text="émile"))] == [
            "Émile's Mug"
        ]
        # LIKE wildcards in the search text are literal characters
        assert [p.name for p in await uow.products.find(ProductQuery(limit=10, text="0%"))] == [
            "100% Cotton_Tee"
        ]
        assert await uow.products.find(ProductQuery(limit=10, text="o_t")) == []
        categories = await uow.products.categories()
    assert [(c.slug, c.product_count) for c in categories] == [
        ("apparel", 1),
        ("books", 1),
        ("kitchen", 1),
    ]


async def test_two_writers_adding_the_same_new_category_both_commit(
    uow_factory: UowFactory, request: pytest.FixtureRequest
) -> None:
    """Replicas on PostgreSQL may create the same new category at the same moment."""
    if request.node.callspec.params["uow_factory"] != "postgres":
        pytest.skip("only PostgreSQL lets two writers' transactions overlap")
    async with uow_factory() as first, uow_factory() as second:
        await first.products.ensure_category("garden", "Garden")
        # The second sees no committed "garden" either, and waits on the first's insert.
        racing = asyncio.create_task(second.products.ensure_category("garden", "Garden"))
        await asyncio.sleep(0.2)
        await first.products.add(product(1, name="Rake", amount=1500, category="garden"))
        await first.commit()
        await racing
        await second.products.add(product(2, name="Hoe", amount=1700, category="garden"))
        await second.commit()
    async with uow_factory() as uow:
        assert [c.slug for c in await uow.products.categories()] == ["garden"]
        assert (await uow.products.get_by_sku("SKU-2")) is not None
