from datetime import UTC

import pytest

from catalog.adapters.memory import InMemoryCatalogUnitOfWork
from catalog.domain.events import ProductCreated, ProductPriceChanged
from catalog.domain.model import Price
from catalog.errors import DuplicateSkuError, ProductNotFoundError
from catalog.service_layer import handlers
from catalog.service_layer.ports import ProductQuery


async def make(uow: InMemoryCatalogUnitOfWork, sku: str = "MUG-1", **changes: object) -> str:
    values: dict[str, object] = {
        "sku": sku,
        "name": "Mug",
        "description": "",
        "category": "kitchen",
        "price": Price(1299, "EUR"),
        "image_url": None,
    }
    values.update(changes)
    product = await handlers.create_product(uow, **values)  # type: ignore[arg-type]
    return product.id


async def test_creating_a_product_commits_it_and_its_category() -> None:
    uow = InMemoryCatalogUnitOfWork()
    product_id = await make(uow, category="home-garden")

    assert uow.commits == 1
    stored = uow.committed.products[product_id]
    assert stored.price == Price(1299, "EUR")
    assert stored.created_at.tzinfo is UTC
    assert [(c.slug, c.name, c.product_count) for c in await handlers.list_categories(uow)] == [
        ("home-garden", "Home Garden", 1)
    ]


async def test_a_duplicate_sku_is_refused_and_nothing_changes() -> None:
    uow = InMemoryCatalogUnitOfWork()
    await make(uow)
    with pytest.raises(DuplicateSkuError):
        await make(uow, name="Another mug")
    assert uow.commits == 1
    assert len(uow.committed.products) == 1


async def test_updating_changes_only_given_fields_and_bumps_updated_at() -> None:
    uow = InMemoryCatalogUnitOfWork()
    product_id = await make(uow)
    before = uow.committed.products[product_id]

    after = await handlers.update_product(uow, product_id, {"price": Price(999, "EUR")})

    assert after.price == Price(999, "EUR")
    assert after.name == before.name
    assert after.sku == before.sku
    assert after.updated_at >= before.updated_at
    assert uow.committed.products[product_id] == after


async def test_an_update_that_changes_nothing_writes_nothing() -> None:
    uow = InMemoryCatalogUnitOfWork()
    product_id = await make(uow)
    await handlers.update_product(uow, product_id, {"name": "Mug"})
    assert uow.commits == 1


async def test_sku_and_id_are_not_editable() -> None:
    uow = InMemoryCatalogUnitOfWork()
    product_id = await make(uow)
    with pytest.raises(ValueError, match="not editable"):
        await handlers.update_product(uow, product_id, {"sku": "OTHER"})


async def test_unknown_products_are_not_found() -> None:
    uow = InMemoryCatalogUnitOfWork()
    with pytest.raises(ProductNotFoundError):
        await handlers.get_product(uow, "nope")
    with pytest.raises(ProductNotFoundError):
        await handlers.update_product(uow, "nope", {"name": "x"})
    with pytest.raises(ProductNotFoundError):
        await handlers.get_product_by_sku(uow, "NOPE")


async def test_listing_pages_until_the_end() -> None:
    uow = InMemoryCatalogUnitOfWork()
    for n in range(5):
        await make(uow, sku=f"S-{n}", name=f"Item {n}")
    page, last = await handlers.list_products(uow, ProductQuery(limit=2))
    assert [p.name for p in page] == ["Item 0", "Item 1"]
    assert last is page[-1]
    page, last = await handlers.list_products(
        uow, ProductQuery(limit=10, after=("item 1", page[-1].id))
    )
    assert [p.name for p in page] == ["Item 2", "Item 3", "Item 4"]
    assert last is None


async def test_creation_and_price_changes_emit_events_only_on_commit() -> None:
    uow = InMemoryCatalogUnitOfWork()
    product_id = await make(uow)
    await handlers.update_product(uow, product_id, {"name": "Renamed"})
    await handlers.update_product(uow, product_id, {"price": Price(999, "EUR")})

    created, changed = uow.published
    assert isinstance(created, ProductCreated) and created.product.id == product_id
    assert isinstance(changed, ProductPriceChanged)
    assert changed.old_price == Price(1299, "EUR")
    assert changed.product.price == Price(999, "EUR")

    with pytest.raises(DuplicateSkuError):
        await make(uow)
    assert len(uow.published) == 2
