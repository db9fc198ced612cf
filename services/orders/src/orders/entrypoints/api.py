"""Orders' public HTTP API (the gateway exposes it as is under /api/v1/orders).

Placing an order needs an `Idempotency-Key` header; the request body never reaches a log
(the payment token is in it). Another user's order answers 404, like a missing one, so order
ids reveal nothing.
"""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from chassis import (
    Money,
    Page,
    Principal,
    api_router,
    decode_cursor,
    encode_cursor,
    problem_response,
    require_role,
)
from chassis.errors import InvalidInputError
from orders.domain.idempotency import check_key, fingerprint
from orders.domain.model import MAX_LINES, MAX_QUANTITY, Order, RequestedLine
from orders.errors import CatalogUnavailableError
from orders.service_layer import handlers
from orders.service_layer.admission import CheckoutAdmission
from orders.service_layer.handlers import UnitOfWorkFactory
from orders.service_layer.ports import Catalog, Clock

ProductId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        examples=["3f0c9a4e-7f7e-4c1b-9a53-2f6a3b8f1d10"],
    ),
]
Quantity = Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)]
PaymentToken = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        examples=["tok_visa"],
        json_schema_extra={"writeOnly": True},
    ),
]
OrderId = Annotated[str, Path(max_length=64)]


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: ProductId
    quantity: Quantity


class OrderIn(BaseModel):
    """What a customer may say about a new order: the rest (prices, status, owner) is ours."""

    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]
    payment_token: PaymentToken


class LineOut(BaseModel):
    product_id: str
    sku: str
    name: str
    quantity: int
    unit_price: Money


class OrderOut(BaseModel):
    id: str
    status: Literal["PENDING", "CONFIRMED", "REJECTED", "CANCELLED"]
    reason: str | None
    cancellation: Literal["requested", "refund_failed"] | None
    items: list[LineOut]
    total: Money
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Order) -> "OrderOut":
        return cls(
            id=order.id,
            status=order.status.value,
            reason=order.reason,
            cancellation=order.cancellation.value if order.cancellation else None,
            items=[
                LineOut(
                    product_id=line.product_id,
                    sku=line.sku,
                    name=line.name,
                    quantity=line.quantity,
                    unit_price=Money(
                        amount=line.unit_price.amount, currency=line.unit_price.currency
                    ),
                )
                for line in order.lines
            ],
            total=Money(amount=order.total.amount, currency=order.total.currency),
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


def render(order: Order) -> bytes:
    return OrderOut.of(order).model_dump_json().encode()


def _after(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    created, last_id = decode_cursor(cursor, length=2)
    try:
        return datetime.fromisoformat(str(created)), str(last_id)
    except ValueError:
        raise InvalidInputError("the cursor is malformed; use next_cursor as given") from None


def build_router(
    *,
    uow: UnitOfWorkFactory,
    catalog: Catalog,
    clock: Clock,
    max_page_size: int,
    max_pending: int,
    pending_retry_after: int,
    admission: CheckoutAdmission | None = None,
) -> APIRouter:
    router = api_router(prefix="/api/v1", tags=["orders"])
    Customer = Annotated[Principal, Depends(require_role())]

    @router.post(
        "/orders",
        status_code=202,
        response_model=OrderOut,
        responses={
            409: {"description": "never: a repeated Idempotency-Key replays the first answer"},
            428: {"description": "no Idempotency-Key header"},
            429: {
                "description": "too many orders still PENDING, or too many checkouts in "
                "progress to take one more now (load shedding): retry after Retry-After"
            },
            503: {"description": "catalog cannot price the order right now"},
        },
    )
    async def place_order(
        body: OrderIn,
        principal: Customer,
        idempotency_key: Annotated[
            str | None,
            Header(alias="Idempotency-Key", description="one per order, e.g. a UUID"),
        ] = None,
    ) -> Response:
        key = check_key(idempotency_key)
        stored = await handlers.place_order(
            uow,
            catalog,
            user_id=principal.subject,
            idempotency_key=key,
            request_fingerprint=fingerprint(body.model_dump(mode="json")),
            lines=[RequestedLine(line.product_id, line.quantity) for line in body.items],
            payment_token=body.payment_token,
            render=render,
            max_pending=max_pending,
            retry_after=pending_retry_after,
            now=clock(),
            admission=admission,
        )
        headers = {"Location": f"/api/v1/orders/{stored.order_id}"}
        if stored.replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(
            stored.body,
            status_code=stored.status,
            media_type="application/json",
            headers=headers,
        )

    @router.get("/orders", response_model=Page[OrderOut])
    async def list_orders(
        principal: Customer,
        limit: Annotated[int, Query(ge=1, le=max_page_size)] = 20,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> Page[OrderOut]:
        rows, last = await handlers.list_orders(
            uow, user_id=principal.subject, limit=limit, after=_after(cursor)
        )
        next_cursor = encode_cursor([last.created_at.isoformat(), last.id]) if last else None
        return Page[OrderOut](items=[OrderOut.of(o) for o in rows], next_cursor=next_cursor)

    @router.get("/orders/{order_id}", response_model=OrderOut)
    async def get_order(order_id: OrderId, principal: Customer) -> OrderOut:
        order = await handlers.get_order(uow, user_id=principal.subject, order_id=order_id)
        return OrderOut.of(order)

    @router.post("/orders/{order_id}/cancel", status_code=202, response_model=OrderOut)
    async def cancel_order(order_id: OrderId, principal: Customer) -> OrderOut:
        order = await handlers.cancel_order(
            uow, user_id=principal.subject, order_id=order_id, now=clock()
        )
        return OrderOut.of(order)

    return router


def install_error_handlers(app: FastAPI, *, retry_after: int = 5) -> None:
    """Catalog being down is nobody's fault in the request: 503 with Retry-After. (The
    chassis maps domain errors to 4xx only, so this edge maps the one 5xx of orders.)"""

    async def catalog_unavailable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CatalogUnavailableError)
        request_id = request.scope.get("state", {}).get("request_id")
        return problem_response(
            503,
            headers={"Retry-After": str(retry_after)},
            title=exc.title,
            detail=exc.detail,
            slug=exc.slug,
            instance=request.url.path,
            request_id=request_id if isinstance(request_id, str) else None,
        )

    app.add_exception_handler(CatalogUnavailableError, catalog_unavailable)
