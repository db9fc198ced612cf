"""Catalog's HTTP API (the gateway exposes it as is under /api/v1)."""

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from catalog.adapters.repository import sort_value
from catalog.domain.model import Price, Product
from catalog.service_layer import handlers
from catalog.service_layer.handlers import UnitOfWorkFactory
from catalog.service_layer.ports import ProductQuery, SortKey
from chassis import (
    Money,
    Page,
    SafeText,
    SingleLine,
    api_router,
    decode_cursor,
    encode_cursor,
    require_role,
)
from chassis.errors import InvalidInputError


def _web_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise ValueError("must be an absolute http(s) URL")
    return value


Sku = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["MUG-001"])]
CategorySlug = Annotated[
    str, Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=50, examples=["kitchen"])
]
Name = Annotated[SingleLine, Field(min_length=1, max_length=200)]
Description = Annotated[SafeText, Field(max_length=5000)]
ProductId = Annotated[str, Path(max_length=64)]
ImageUrl = Annotated[str, Field(max_length=2048), AfterValidator(_web_url)]


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: Sku
    name: Name
    description: Description = ""
    category: CategorySlug
    price: Money
    image_url: ImageUrl | None = None


class ProductPatch(BaseModel):
    """Fields to change; the sku and the id never change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name | None = None
    description: Description | None = None
    category: CategorySlug | None = None
    price: Money | None = None
    image_url: ImageUrl | None = None


class ProductOut(BaseModel):
    id: str
    sku: str
    name: str
    description: str
    category: str
    price: Money
    image_url: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, product: Product) -> "ProductOut":
        return cls(
            id=product.id,
            sku=product.sku,
            name=product.name,
            description=product.description,
            category=product.category,
            price=Money(amount=product.price.amount, currency=product.price.currency),
            image_url=product.image_url,
            created_at=product.created_at,
            updated_at=product.updated_at,
        )


class CategoryOut(BaseModel):
    slug: str
    name: str
    product_count: int


def build_router(
    *, reader: UnitOfWorkFactory, writer: UnitOfWorkFactory, max_page_size: int
) -> APIRouter:
    router = api_router(prefix="/api/v1", tags=["catalog"])
    admin = Depends(require_role("admin"))

    @router.get("/products", response_model=Page[ProductOut])
    async def list_products(
        limit: Annotated[int, Query(ge=1, le=max_page_size)] = 20,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        category: Annotated[CategorySlug | None, Query()] = None,
        q: Annotated[SafeText | None, Query(max_length=200)] = None,
        sort: SortKey = "name",
    ) -> Page[ProductOut]:
        after = None
        if cursor:
            value, last_id = decode_cursor(cursor, length=2)
            after = (value, str(last_id))
        text = q.strip() if q else None
        rows, last = await handlers.list_products(
            reader(),
            ProductQuery(limit=limit, sort=sort, category=category, text=text or None, after=after),
        )
        next_cursor = encode_cursor([sort_value(last, sort), last.id]) if last else None
        return Page[ProductOut](items=[ProductOut.of(p) for p in rows], next_cursor=next_cursor)

    @router.get("/products/sku/{sku}", response_model=ProductOut)
    async def get_product_by_sku(sku: Sku) -> ProductOut:
        return ProductOut.of(await handlers.get_product_by_sku(reader(), sku))

    @router.get("/products/{product_id}", response_model=ProductOut)
    async def get_product(product_id: ProductId) -> ProductOut:
        return ProductOut.of(await handlers.get_product(reader(), product_id))

    @router.post(
        "/products",
        response_model=ProductOut,
        status_code=status.HTTP_201_CREATED,
        dependencies=[admin],
    )
    async def create_product(body: ProductIn, response: Response) -> ProductOut:
        product = await handlers.create_product(
            writer(),
            sku=body.sku,
            name=body.name,
            description=body.description,
            category=body.category,
            price=Price(body.price.amount, body.price.currency),
            image_url=body.image_url,
        )
        response.headers["Location"] = f"/api/v1/products/{product.id}"
        return ProductOut.of(product)

    @router.patch("/products/{product_id}", response_model=ProductOut, dependencies=[admin])
    async def update_product(product_id: ProductId, body: ProductPatch) -> ProductOut:
        changes = body.model_dump(exclude_unset=True)
        for required in ("name", "description", "category", "price"):
            if required in changes and changes[required] is None:
                raise InvalidInputError(f"{required} cannot be null", field=required)
        if body.price is not None:
            changes["price"] = Price(body.price.amount, body.price.currency)
        return ProductOut.of(await handlers.update_product(writer(), product_id, changes))

    @router.get("/categories", response_model=Page[CategoryOut])
    async def list_categories() -> Page[CategoryOut]:
        found = await handlers.list_categories(reader())
        return Page[CategoryOut](
            items=[
                CategoryOut(slug=c.slug, name=c.name, product_count=c.product_count) for c in found
            ]
        )

    return router
