"""The psp's HTTP API: Stripe-like authorizations, the fault knobs and the audit.

Every POST needs an `Idempotency-Key` header; the same key with the same request gets the
stored answer (with `Idempotent-Replayed: true`), with another request 422. The fault
knobs act on `/v1/authorizations*` only, so they can always be turned off again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from chassis import PROBLEM_MEDIA_TYPE, CurrencyCode, SingleLine, api_router, require_role
from chassis.errors import (
    ConflictError,
    InvalidInputError,
    MercatoError,
    NotFoundError,
    PreconditionFailedError,
    TooManyRequestsError,
)
from psp.domain.faults import FaultInjector, FaultKnobs
from psp.domain.model import Authorization
from psp.errors import (
    BadRequestError,
    IdempotencyKeyMissingError,
    InvalidIdempotencyKeyError,
)
from psp.service_layer import handlers
from psp.service_layer.handlers import Answer, Operation, UnitOfWorkFactory

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
MAX_AMOUNT = 10**12

AuthorizationId = Annotated[str, Path(max_length=64)]
Amount = Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT, description="integer minor units")]
Token = Annotated[str, Field(min_length=1, max_length=64, examples=["tok_visa"])]
Reference = Annotated[SingleLine, Field(min_length=1, max_length=255, examples=["order-42"])]
Rate = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class AuthorizationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount
    currency: CurrencyCode
    token: Token
    reference: Reference


class AmountIn(BaseModel):
    """Capture or refund: `amount` defaults to all that is capturable or refundable."""

    model_config = ConfigDict(extra="forbid")

    amount: Amount | None = None


class VoidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuthorizationOut(BaseModel):
    id: str
    status: str
    decline_code: str | None
    amount: int
    currency: str
    reference: str
    captured_amount: int
    refunded_amount: int
    idempotency_key: str
    created_at: datetime
    updated_at: datetime


class AuthorizationList(BaseModel):
    items: list[AuthorizationOut]


class FaultsIn(BaseModel):
    """The whole set of knobs: a knob left out goes back to its default (off)."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: StrictInt = Field(0, ge=0, le=60_000)
    error_rate: Rate = 0.0
    timeout_after_charge_rate: Rate = 0.0
    timeout_seconds: float = Field(30.0, ge=0, le=300, allow_inf_nan=False)


class FaultsOut(BaseModel):
    latency_ms: int
    error_rate: float
    timeout_after_charge_rate: float
    timeout_seconds: float

    @classmethod
    def of(cls, knobs: FaultKnobs) -> FaultsOut:
        return cls(
            latency_ms=knobs.latency_ms,
            error_rate=knobs.error_rate,
            timeout_after_charge_rate=knobs.timeout_after_charge_rate,
            timeout_seconds=knobs.timeout_seconds,
        )


class ChargeAudit(BaseModel):
    id: str
    idempotency_key: str
    reference: str
    amount: int
    currency: str
    status: str
    captured_amount: int
    refunded_amount: int


class ChargeAuditList(BaseModel):
    items: list[ChargeAudit]


def authorization_json(authorization: Authorization) -> dict[str, Any]:
    out = AuthorizationOut(
        id=authorization.id,
        status=authorization.status.value,
        decline_code=authorization.decline_code,
        amount=authorization.amount,
        currency=authorization.currency,
        reference=authorization.reference,
        captured_amount=authorization.captured_amount,
        refunded_amount=authorization.refunded_amount,
        idempotency_key=authorization.idempotency_key,
        created_at=authorization.created_at,
        updated_at=authorization.updated_at,
    )
    return out.model_dump(mode="json")


def status_of(error: MercatoError) -> int:
    """The HTTP status of a refusal (the chassis's mapping, plus the psp's 400s)."""
    for kind, status in (
        (BadRequestError, 400),
        (NotFoundError, 404),
        (ConflictError, 409),
        (PreconditionFailedError, 428),
        (TooManyRequestsError, 429),
        (InvalidInputError, 422),
    ):
        if isinstance(error, kind):
            return status
    return 422


def problem_json(error: MercatoError, *, status: int | None = None) -> dict[str, Any]:
    code = status or status_of(error)
    body: dict[str, Any] = {
        "type": f"/problems/{error.slug}",
        "title": error.title,
        "status": code,
        "detail": error.detail,
    }
    body.update({k: v for k, v in error.extra.items() if k not in body})
    return body


def bad_request_response(request: Request, error: BadRequestError) -> Response:
    body = problem_json(error, status=400)
    body["instance"] = request.url.path
    request_id = getattr(request.state, "request_id", None)
    if isinstance(request_id, str):
        body["request_id"] = request_id
    return Response(orjson.dumps(body), status_code=400, media_type=PROBLEM_MEDIA_TYPE)


def _render(authorization: Authorization) -> tuple[int, dict[str, Any]]:
    return 200, authorization_json(authorization)


def _render_created(authorization: Authorization) -> tuple[int, dict[str, Any]]:
    return 201, authorization_json(authorization)


def _render_error(error: MercatoError) -> tuple[int, dict[str, Any]]:
    return status_of(error), problem_json(error)


def _answer_response(answer: Answer) -> Response:
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return Response(
        orjson.dumps(answer.body),
        status_code=answer.status,
        media_type=PROBLEM_MEDIA_TYPE if answer.status >= 400 else "application/json",
        headers=headers,
    )


def _idempotency_key(value: str | None) -> str:
    if value is None:
        raise IdempotencyKeyMissingError(
            "this request changes something: send an Idempotency-Key header"
        )
    if not _KEY.match(value):
        raise InvalidIdempotencyKeyError(
            "the Idempotency-Key must be 1-255 visible ASCII characters"
        )
    return value


IdempotencyKeyHeader = Annotated[
    str | None, Header(alias="Idempotency-Key", description="required: makes retries safe")
]


def build_routers(
    *,
    reader: UnitOfWorkFactory,
    writer: UnitOfWorkFactory,
    faults: FaultInjector,
    clock: Callable[[], datetime],
) -> list[APIRouter]:
    async def inject_faults() -> None:
        status = await faults.before_call()
        if status is not None:
            raise HTTPException(
                status_code=status, detail="injected fault: the psp failed before doing anything"
            )

    provider = api_router(tags=["psp"], dependencies=[Depends(inject_faults)])
    admin = Depends(require_role("admin"))

    async def run(
        request: Request,
        key_header: str | None,
        body: dict[str, Any],
        operation: Operation,
        render: handlers.Render,
    ) -> Response:
        key = _idempotency_key(key_header)
        answer = await handlers.idempotently(
            writer(),
            key=key,
            method=request.method,
            path=request.url.path,
            body=body,
            operation=operation,
            render=render,
            render_error=_render_error,
            now=clock(),
        )
        if answer.status < 300 and faults.should_hold_answer():
            # "Timeout after charging": the effect is committed, the answer never arrives.
            await faults.hold_answer(request.is_disconnected)
        return _answer_response(answer)

    @provider.post(
        "/v1/authorizations",
        status_code=201,
        response_model=AuthorizationOut,
        responses={200: {"model": AuthorizationOut}},
    )
    async def create_authorization(
        body: AuthorizationIn, request: Request, idempotency_key: IdempotencyKeyHeader = None
    ) -> Response:
        key = _idempotency_key(idempotency_key)
        operation = handlers.authorize(
            key=key,
            reference=body.reference,
            token=body.token,
            amount=body.amount,
            currency=body.currency,
            now=clock(),
        )
        return await run(request, key, body.model_dump(), operation, _render_created)

    @provider.post("/v1/authorizations/{authorization_id}/capture", response_model=AuthorizationOut)
    async def capture(
        authorization_id: AuthorizationId,
        request: Request,
        idempotency_key: IdempotencyKeyHeader = None,
        body: AmountIn | None = None,
    ) -> Response:
        amount = body.amount if body else None
        operation = handlers.capture(authorization_id, amount, now=clock())
        return await run(request, idempotency_key, {"amount": amount}, operation, _render)

    @provider.post("/v1/authorizations/{authorization_id}/void", response_model=AuthorizationOut)
    async def void(
        authorization_id: AuthorizationId,
        request: Request,
        idempotency_key: IdempotencyKeyHeader = None,
        body: VoidIn | None = None,
    ) -> Response:
        operation = handlers.void(authorization_id, now=clock())
        return await run(request, idempotency_key, {}, operation, _render)

    @provider.post("/v1/authorizations/{authorization_id}/refund", response_model=AuthorizationOut)
    async def refund(
        authorization_id: AuthorizationId,
        request: Request,
        idempotency_key: IdempotencyKeyHeader = None,
        body: AmountIn | None = None,
    ) -> Response:
        amount = body.amount if body else None
        operation = handlers.refund(authorization_id, amount, now=clock())
        return await run(request, idempotency_key, {"amount": amount}, operation, _render)

    @provider.get("/v1/authorizations", response_model=AuthorizationList)
    async def find_authorizations(
        idempotency_key: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
        reference: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    ) -> AuthorizationList:
        if idempotency_key is None and reference is None:
            raise InvalidInputError(
                "give idempotency_key or reference",
                errors=[
                    {
                        "location": "query",
                        "field": "idempotency_key",
                        "message": "idempotency_key or reference is required",
                    }
                ],
            )
        found = await handlers.find_authorizations(
            reader(), idempotency_key=idempotency_key, reference=reference
        )
        return AuthorizationList.model_validate({"items": [authorization_json(a) for a in found]})

    @provider.get("/v1/authorizations/{authorization_id}", response_model=AuthorizationOut)
    async def get_authorization(authorization_id: AuthorizationId) -> AuthorizationOut:
        found = await handlers.get_authorization(reader(), authorization_id)
        return AuthorizationOut.model_validate(authorization_json(found))

    operators = api_router(tags=["psp-admin"])

    @operators.get("/v1/_faults", response_model=FaultsOut, dependencies=[admin])
    async def get_faults() -> FaultsOut:
        return FaultsOut.of(faults.knobs)

    @operators.put("/v1/_faults", response_model=FaultsOut, dependencies=[admin])
    async def put_faults(body: FaultsIn) -> FaultsOut:
        faults.knobs = FaultKnobs(
            latency_ms=body.latency_ms,
            error_rate=body.error_rate,
            timeout_after_charge_rate=body.timeout_after_charge_rate,
            timeout_seconds=body.timeout_seconds,
        )
        return FaultsOut.of(faults.knobs)

    @operators.get("/internal/audit/charges", response_model=ChargeAuditList, dependencies=[admin])
    async def audit_charges() -> ChargeAuditList:
        rows = await handlers.all_authorizations(reader())
        return ChargeAuditList(
            items=[
                ChargeAudit(
                    id=a.id,
                    idempotency_key=a.idempotency_key,
                    reference=a.reference,
                    amount=a.amount,
                    currency=a.currency,
                    status=a.status.value,
                    captured_amount=a.captured_amount,
                    refunded_amount=a.refunded_amount,
                )
                for a in rows
            ]
        )

    return [provider, operators]
