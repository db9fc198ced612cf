"""The psp's use cases: plain functions over a unit of work.

Every call that changes something runs through `idempotently`: the key is claimed, the
operation applied and its answer stored in one transaction, so a retried request (same
key, same body) gets the stored answer, even after a restart, and never acts twice. A key
used again with a different request is refused. Refusals the operation raises (a state
conflict, an unknown token) are answers too and are stored like successes; unexpected
errors roll everything back, the key included, so a retry runs afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from chassis.errors import MercatoError
from psp.domain.model import Authorization, new_authorization
from psp.errors import AuthorizationNotFoundError, IdempotencyKeyReusedError
from psp.service_layer.ports import IdempotencyRecord, PspUnitOfWork

UnitOfWorkFactory = Callable[[], PspUnitOfWork]
Operation = Callable[[PspUnitOfWork], Awaitable[Authorization]]
Render = Callable[[Authorization], tuple[int, dict[str, Any]]]
RenderError = Callable[[MercatoError], tuple[int, dict[str, Any]]]


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool  # the stored answer of an earlier request with the same key


def fingerprint(method: str, path: str, body: dict[str, Any]) -> str:
    """What makes two requests "the same" for an idempotency key."""
    canonical = orjson.dumps([method.upper(), path, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


async def idempotently(
    uow: PspUnitOfWork,
    *,
    key: str,
    method: str,
    path: str,
    body: dict[str, Any],
    operation: Operation,
    render: Render,
    render_error: RenderError,
    now: datetime,
) -> Answer:
    request = IdempotencyRecord(
        key=key,
        method=method,
        path=path,
        fingerprint=fingerprint(method, path, body),
        created_at=now,
    )
    async with uow:
        if not await uow.keys.claim(request):
            stored = await uow.keys.get(key)
            if stored is None or stored.status is None or stored.body is None:
                raise RuntimeError(f"idempotency key {key!r} claimed but not answered")
            if stored.fingerprint != request.fingerprint:
                raise IdempotencyKeyReusedError(
                    "this Idempotency-Key was used before for a different request "
                    f"({stored.method} {stored.path} with other parameters)"
                )
            return Answer(stored.status, orjson.loads(stored.body), replayed=True)
        try:
            status, answer = render(await operation(uow))
        except MercatoError as error:
            status, answer = render_error(error)
        await uow.keys.complete(key, status=status, body=orjson.dumps(answer).decode())
        await uow.commit()
    return Answer(status, answer, replayed=False)


def authorize(
    *, key: str, reference: str, token: str, amount: int, currency: str, now: datetime
) -> Operation:
    async def run(uow: PspUnitOfWork) -> Authorization:
        authorization = new_authorization(
            idempotency_key=key,
            reference=reference,
            token=token,
            amount=amount,
            currency=currency,
            now=now,
        )
        await uow.authorizations.add(authorization)
        return authorization

    return run


async def _load(uow: PspUnitOfWork, authorization_id: str, *, lock: bool = True) -> Authorization:
    found = await uow.authorizations.get(authorization_id, lock=lock)
    if found is None:
        raise AuthorizationNotFoundError(f"no authorization with id {authorization_id}")
    return found


def capture(authorization_id: str, amount: int | None, *, now: datetime) -> Operation:
    async def run(uow: PspUnitOfWork) -> Authorization:
        captured = (await _load(uow, authorization_id)).capture(amount, now=now)
        await uow.authorizations.save(captured)
        return captured

    return run


def void(authorization_id: str, *, now: datetime) -> Operation:
    async def run(uow: PspUnitOfWork) -> Authorization:
        voided = (await _load(uow, authorization_id)).void(now=now)
        await uow.authorizations.save(voided)
        return voided

    return run


def refund(authorization_id: str, amount: int | None, *, now: datetime) -> Operation:
    async def run(uow: PspUnitOfWork) -> Authorization:
        refunded = (await _load(uow, authorization_id)).refund(amount, now=now)
        await uow.authorizations.save(refunded)
        return refunded

    return run


async def get_authorization(uow: PspUnitOfWork, authorization_id: str) -> Authorization:
    async with uow:
        return await _load(uow, authorization_id, lock=False)


async def find_authorizations(
    uow: PspUnitOfWork, *, idempotency_key: str | None, reference: str | None
) -> list[Authorization]:
    """By the key that created it (at most one), or by the merchant's reference."""
    async with uow:
        if idempotency_key is not None:
            found = await uow.authorizations.get_by_idempotency_key(idempotency_key)
            rows = [found] if found is not None else []
        else:
            rows = await uow.authorizations.find_by_reference(reference or "")
    if idempotency_key is not None and reference is not None:
        rows = [row for row in rows if row.reference == reference]
    return rows


async def all_authorizations(uow: PspUnitOfWork) -> list[Authorization]:
    async with uow:
        return await uow.authorizations.all()
