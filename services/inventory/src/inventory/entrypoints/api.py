"""Inventory's HTTP API.

Public (the gateway exposes `/api/v1/inventory`): availability. Admin: stock levels, restock
and adjust. Internal (never routed by the gateway; admin only): the audit `mercato check`
reads to prove that no unit appeared or vanished.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from chassis import SingleLine, api_router, require_role
from inventory.domain.audit import Audit
from inventory.domain.reservations import ReservationStatus
from inventory.domain.stock import MAX_QUANTITY, MAX_SKUS, SKU_PATTERN, Availability, Stock
from inventory.service_layer import handlers
from inventory.service_layer.ports import Clock, UnitOfWorkFactory

MAX_AVAILABLE = 1_000_000_000

SkuPath = Annotated[str, Path(pattern=SKU_PATTERN, examples=["MUG-001"])]


class AvailabilityOut(BaseModel):
    sku: str
    available: int
    in_stock: bool

    @classmethod
    def of(cls, item: Availability) -> AvailabilityOut:
        return cls(sku=item.sku, available=item.available, in_stock=item.in_stock)


class AvailabilityList(BaseModel):
    items: list[AvailabilityOut]


class StockOut(BaseModel):
    sku: str
    product_id: str | None
    available: int
    reserved: int
    committed: int
    in_stock: bool
    updated_at: datetime

    @classmethod
    def of(cls, stock: Stock) -> StockOut:
        return cls(
            sku=stock.sku,
            product_id=stock.product_id,
            available=stock.available,
            reserved=stock.reserved,
            committed=stock.committed,
            in_stock=stock.in_stock,
            updated_at=stock.updated_at,
        )


class Restock(BaseModel):
    """Goods received: add `quantity` to the available units."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["restock"]
    quantity: Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)]


class Adjust(BaseModel):
    """A correction (stock count, damage, loss): set the available units, saying why."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action: Literal["adjust"]
    available: Annotated[StrictInt, Field(ge=0, le=MAX_AVAILABLE)]
    reason: Annotated[SingleLine, Field(min_length=1, max_length=200)]


StockChange = Annotated[Restock | Adjust, Field(discriminator="action")]


class SkuBalanceOut(BaseModel):
    sku: str
    initial: int
    restocked: int
    adjusted: int
    available: int
    reserved: int
    committed: int


class LineOut(BaseModel):
    sku: str
    quantity: int


ShownStatus = Literal["held", "committed", "released", "expired"]
_SHOWN_STATUS: dict[ReservationStatus, ShownStatus] = {
    ReservationStatus.HELD: "held",
    ReservationStatus.COMMITTED: "committed",
    ReservationStatus.RELEASED: "released",
    ReservationStatus.EXPIRED: "expired",
}  # failed ones held nothing: they are not in the audit


class ReservationOut(BaseModel):
    order_id: str
    status: ShownStatus
    lines: list[LineOut]
    expires_at: datetime


class AuditOut(BaseModel):
    """For every sku: initial + restocked + adjusted = available + reserved + committed;
    and `reserved` (`committed`) is what its held (committed) reservations hold."""

    skus: list[SkuBalanceOut]
    reservations: list[ReservationOut]

    @classmethod
    def of(cls, audit: Audit) -> AuditOut:
        return cls(
            skus=[
                SkuBalanceOut(
                    sku=b.sku,
                    initial=b.initial,
                    restocked=b.restocked,
                    adjusted=b.adjusted,
                    available=b.available,
                    reserved=b.reserved,
                    committed=b.committed,
                )
                for b in audit.skus
            ],
            reservations=[
                ReservationOut(
                    order_id=r.order_id,
                    status=_SHOWN_STATUS[r.status],
                    lines=[LineOut(sku=line.sku, quantity=line.quantity) for line in r.lines],
                    expires_at=r.expires_at,
                )
                for r in audit.reservations
                if r.status in _SHOWN_STATUS
            ],
        )


def build_router(
    *, reader: UnitOfWorkFactory, writer: UnitOfWorkFactory, clock: Clock
) -> APIRouter:
    router = api_router(prefix="/api/v1/inventory", tags=["inventory"])
    admin = Depends(require_role("admin"))

    @router.get("/availability", response_model=AvailabilityList)
    async def get_availability(
        skus: Annotated[
            str,
            Query(
                max_length=MAX_SKUS * 70,
                description=f"comma-separated SKUs, at most {MAX_SKUS}; each is answered once, "
                "in order; a SKU inventory does not know has available 0",
                examples=["MUG-001,TEE-002"],
            ),
        ],
    ) -> AvailabilityList:
        wanted = handlers.check_skus(skus.split(","))
        found = await handlers.availability(reader(), wanted)
        return AvailabilityList(items=[AvailabilityOut.of(item) for item in found])

    @router.get("/stock/{sku}", response_model=StockOut, dependencies=[admin])
    async def get_stock(sku: SkuPath) -> StockOut:
        return StockOut.of(await handlers.get_stock(reader(), sku))

    @router.put("/stock/{sku}", response_model=StockOut, dependencies=[admin])
    async def change_stock(sku: SkuPath, body: StockChange) -> StockOut:
        if isinstance(body, Restock):
            stock = await handlers.restock(writer(), sku=sku, quantity=body.quantity, now=clock())
        else:
            stock = await handlers.adjust(
                writer(), sku=sku, available=body.available, reason=body.reason, now=clock()
            )
        return StockOut.of(stock)

    return router


def build_internal_router(*, reader: UnitOfWorkFactory) -> APIRouter:
    router = api_router(prefix="/internal", tags=["internal"])

    @router.get(
        "/audit/stock", response_model=AuditOut, dependencies=[Depends(require_role("admin"))]
    )
    async def audit_stock() -> AuditOut:
        return AuditOut.of(await handlers.audit(reader()))

    return router
