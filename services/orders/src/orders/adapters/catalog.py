"""Catalog over HTTP: prices at order time, through the chassis's discovered, resilient client."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated
from urllib.parse import quote

import structlog
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from chassis.http import ServiceCallError, ServiceClient
from orders.domain.model import MAX_TOTAL, Price, ProductSnapshot
from orders.errors import CatalogUnavailableError

log = structlog.get_logger("orders.catalog")


class _PriceIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    amount: Annotated[StrictInt, Field(ge=0, le=MAX_TOTAL)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class _ProductIn(BaseModel):
    """Orders' own schema of catalog's product: only what an order keeps."""

    model_config = ConfigDict(extra="ignore")

    sku: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    price: _PriceIn


class HttpCatalog:
    """The `Catalog` port on catalog's `GET /api/v1/products/{id}`."""

    def __init__(
        self, client: ServiceClient, *, service: str = "catalog", timeout: float = 3.0
    ) -> None:
        self.client = client
        self.service = service
        self.timeout = timeout

    async def products(self, product_ids: Sequence[str]) -> dict[str, ProductSnapshot]:
        answers = await asyncio.gather(
            *(self._product(product_id) for product_id in product_ids), return_exceptions=True
        )
        found: dict[str, ProductSnapshot] = {}
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
            if answer is not None:
                found[answer.id] = answer
        return found

    async def _product(self, product_id: str) -> ProductSnapshot | None:
        path = f"/api/v1/products/{quote(product_id, safe='')}"
        try:
            response = await self.client.request(self.service, "GET", path, timeout=self.timeout)
        except ServiceCallError as error:
            log.warning("catalog unavailable", error=error.detail)
            raise CatalogUnavailableError() from None
        if 400 <= response.status < 500 and response.status != 429:
            return None  # no such product (404), or an id catalog refuses outright
        if response.status != 200:
            log.warning("catalog answered with an error", status=response.status)
            raise CatalogUnavailableError()
        try:
            product = _ProductIn.model_validate_json(response.body)
        except ValidationError:
            log.warning("catalog answered with an unreadable product", product_id=product_id)
            raise CatalogUnavailableError() from None
        price = Price(product.price.amount, product.price.currency)
        return ProductSnapshot(product_id, product.sku, product.name, price)
