"""Admin-only API for operators and `mercato check` (the gateway does not route /internal).

- `GET /internal/audit/orders`: every order with its lines and its checkout saga's state, and
  how long a checkout may keep an order PENDING (`saga_timeout_seconds`);
- `GET /internal/sagas?status=&order_id=`: checkout sagas, newest first;
- `GET /internal/sagas/{id}`: one saga's plan and timeline (commands, replies, compensations).
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from chassis import api_router, decode_cursor, encode_cursor, require_role
from chassis.errors import InvalidInputError, NotFoundError
from chassis.saga import SagaInstance, SagaOrchestrator, SagaStatus
from orders.domain.events import money
from orders.service_layer import handlers
from orders.service_layer.checkout import CHECKOUT, REDACTED_DATA
from orders.service_layer.handlers import UnitOfWorkFactory


class SagaNotFoundError(NotFoundError):
    title = "Saga not found"
    slug = "saga-not-found"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _summary(saga: SagaInstance) -> dict[str, Any]:
    plain = saga.to_dict(redact=REDACTED_DATA)
    del plain["history"], plain["data"]
    return plain


def build_internal_router(
    *,
    uow: UnitOfWorkFactory,
    orchestrator: SagaOrchestrator,
    saga_timeout_seconds: int,
    max_page_size: int,
) -> APIRouter:
    router = api_router(prefix="/internal", tags=["internal"])
    admin = [Depends(require_role("admin"))]

    @router.get("/audit/orders", dependencies=admin)
    async def audit_orders() -> JSONResponse:
        orders = await handlers.all_orders(uow)
        sagas = {
            s.correlation_id: s for s in await orchestrator.find(saga_type=CHECKOUT, limit=None)
        }
        items = []
        for order in orders:
            saga = sagas.get(order.id)
            items.append(
                {
                    "id": order.id,
                    "user_id": order.user_id,
                    "status": order.status.value,
                    "reason": order.reason,
                    "cancellation": order.cancellation.value if order.cancellation else None,
                    "created_at": _iso(order.created_at),
                    "updated_at": _iso(order.updated_at),
                    "total": money(order.total),
                    "lines": [
                        {
                            "product_id": line.product_id,
                            "sku": line.sku,
                            "quantity": line.quantity,
                            "unit_price": money(line.unit_price),
                        }
                        for line in order.lines
                    ],
                    "saga": (
                        {"id": saga.id, "status": saga.status.value, "step": saga.step}
                        if saga
                        else None
                    ),
                }
            )
        return JSONResponse({"saga_timeout_seconds": saga_timeout_seconds, "items": items})

    @router.get("/sagas", dependencies=admin)
    async def list_sagas(
        status: SagaStatus | None = None,
        order_id: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=max_page_size)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> JSONResponse:
        before = None
        if cursor:
            created, last_id = decode_cursor(cursor, length=2)
            try:
                before = (datetime.fromisoformat(str(created)), str(last_id))
            except ValueError:
                raise InvalidInputError("the cursor is malformed") from None
        found = await orchestrator.find(
            status=status, correlation_id=order_id, limit=limit + 1, before=before
        )
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            next_cursor = encode_cursor([page[-1].created_at.isoformat(), page[-1].id])
        return JSONResponse({"items": [_summary(s) for s in page], "next_cursor": next_cursor})

    @router.get("/sagas/{saga_id}", dependencies=admin)
    async def get_saga(saga_id: Annotated[str, Path(max_length=64)]) -> JSONResponse:
        saga = await orchestrator.get(saga_id)
        if saga is None:
            raise SagaNotFoundError(f"no saga with id {saga_id!r}")
        body = saga.to_dict(redact=REDACTED_DATA)
        body["plan"] = orchestrator.definition(saga.saga_type).describe()
        return JSONResponse(body)

    return router
