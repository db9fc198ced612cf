"""Idempotency on the in-memory unit of work: stored answers, refused reuse, clean rollback."""

from datetime import UTC, datetime
from typing import Any

import pytest

from chassis.errors import MercatoError
from psp.adapters.memory import InMemoryPspUnitOfWork
from psp.domain.model import Authorization
from psp.errors import IdempotencyKeyReusedError
from psp.service_layer import handlers
from psp.service_layer.handlers import Operation

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def render(authorization: Authorization) -> tuple[int, dict[str, Any]]:
    return 201, {"id": authorization.id, "status": authorization.status.value}


def render_error(error: MercatoError) -> tuple[int, dict[str, Any]]:
    return 400, {"slug": error.slug}


async def call(
    uow: InMemoryPspUnitOfWork, key: str, body: dict[str, Any], operation: Operation
) -> handlers.Answer:
    return await handlers.idempotently(
        uow, key=key, method="POST", path="/v1/authorizations", body=body,
        operation=operation, render=render, render_error=render_error, now=NOW,
    )  # fmt: skip


def authorize(card: str = "tok_visa", amount: int = 500) -> Operation:
    return handlers.authorize(
        key="k1", reference="order-1", token=card, amount=amount, currency="EUR", now=NOW
    )


async def test_the_same_key_gets_the_stored_answer_and_acts_once() -> None:
    uow = InMemoryPspUnitOfWork()
    first = await call(uow, "k1", {"amount": 500}, authorize())
    again = await call(uow, "k1", {"amount": 500}, authorize())
    assert first.status == again.status == 201
    assert again.body == first.body
    assert (first.replayed, again.replayed) == (False, True)
    assert len(uow.committed_authorizations) == 1


async def test_a_key_reused_for_another_request_is_refused() -> None:
    uow = InMemoryPspUnitOfWork()
    await call(uow, "k1", {"amount": 500}, authorize())
    with pytest.raises(IdempotencyKeyReusedError):
        await call(uow, "k1", {"amount": 501}, authorize(amount=501))
    assert len(uow.committed_authorizations) == 1


async def test_refusals_are_stored_answers_too() -> None:
    uow = InMemoryPspUnitOfWork()
    first = await call(uow, "k1", {"token": "bad"}, authorize(card="bad"))
    again = await call(uow, "k1", {"token": "bad"}, authorize(card="bad"))
    assert first.status == again.status == 400
    assert first.body == again.body == {"slug": "invalid-token"}
    assert again.replayed
    assert uow.committed_authorizations == {}


async def test_an_unexpected_error_stores_nothing_so_a_retry_runs_afresh() -> None:
    uow = InMemoryPspUnitOfWork()

    async def broken(_: Any) -> Authorization:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        await call(uow, "k1", {"amount": 500}, broken)
    assert uow.committed_keys == {}
    answer = await call(uow, "k1", {"amount": 500}, authorize())
    assert (answer.status, answer.replayed) == (201, False)


async def test_lookup_by_key_and_by_reference() -> None:
    uow = InMemoryPspUnitOfWork()
    created = await call(uow, "k1", {"amount": 500}, authorize())
    by_key = await handlers.find_authorizations(uow, idempotency_key="k1", reference=None)
    by_reference = await handlers.find_authorizations(
        uow, idempotency_key=None, reference="order-1"
    )
    assert [a.id for a in by_key] == [a.id for a in by_reference] == [created.body["id"]]
    assert await handlers.find_authorizations(uow, idempotency_key="k2", reference=None) == []
    assert await handlers.find_authorizations(uow, idempotency_key="k1", reference="other") == []
