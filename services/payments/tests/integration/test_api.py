"""Payments over HTTP, on SQLite and on PostgreSQL: an order's payment for its owner only,
the admin audit, and every kind of bad input (4xx problem+json, never a 500)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from chassis import PRINCIPAL_HEADER, InternalTokenCodec, Principal
from chassis.messaging import Envelope, InMemoryMessageBus
from payments.adapters.memory import FakePaymentProvider
from payments.bootstrap import build_app
from payments.settings import PaymentsSettings

SECRET = "payments-test-internal-secret"


def as_user(subject: str, *roles: str) -> dict[str, str]:
    token = InternalTokenCodec(SECRET.encode()).issue(Principal(subject, frozenset(roles)))
    return {PRINCIPAL_HEADER: token}


def admin() -> dict[str, str]:
    return as_user("root", "admin")


@dataclass
class Api:
    client: httpx.AsyncClient
    bus: InMemoryMessageBus
    psp: FakePaymentProvider

    async def command(self, type_: str, order_id: str, **data: Any) -> None:
        await self.bus.publish(
            Envelope(
                type=type_, source="orders", subject=order_id, data={"order_id": order_id, **data}
            )
        )

    async def pay(
        self, order_id: str, user: str = "alice", card: str = "tok_visa"
    ) -> dict[str, Any]:
        await self.command(
            "payments.authorize_payment.v1",
            order_id,
            user_id=user,
            amount={"amount": 4200, "currency": "EUR"},
            payment_token=card,
        )
        return await self.wait(order_id, lambda p: p["status"] in ("authorized", "declined"))

    async def wait(self, order_id: str, done: Any, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                answer = await self.client.get(
                    "/api/v1/payments", params={"order_id": order_id}, headers=admin()
                )
                if answer.status_code == 200 and done(answer.json()):
                    body: dict[str, Any] = answer.json()
                    return body
                await asyncio.sleep(0.02)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/payments.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    settings = PaymentsSettings(
        database_url=url, internal_secret=SECRET, data_dir=tmp_path, environment="test",
        reconcile_interval=0.2,
    )  # fmt: skip
    bus, psp = InMemoryMessageBus(), FakePaymentProvider()
    app = build_app(settings, bus=bus, provider=psp)
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://payments"
        ) as client,
    ):
        yield Api(client, bus, psp)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


async def test_the_owner_sees_the_payment_of_an_order(api: Api) -> None:
    order_id = str(uuid.uuid4())
    await api.pay(order_id)
    answer = await api.client.get(
        "/api/v1/payments", params={"order_id": order_id}, headers=as_user("alice", "customer")
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["order_id"] == order_id
    assert body["status"] == "authorized"
    assert body["amount"] == {"amount": 4200, "currency": "EUR"}
    assert body["captured"] == body["refunded"] == {"amount": 0, "currency": "EUR"}
    assert body["authorized"] == {"amount": 4200, "currency": "EUR"}
    assert body["decline_reason"] is None
    assert answer.headers["cache-control"] == "private, no-store"


async def test_another_users_order_is_not_found(api: Api) -> None:
    order_id = str(uuid.uuid4())
    await api.pay(order_id)
    other = await api.client.get(
        "/api/v1/payments", params={"order_id": order_id}, headers=as_user("mallory", "customer")
    )
    missing = await api.client.get(
        "/api/v1/payments", params={"order_id": "no-such-order"}, headers=as_user("alice")
    )
    # The same answer for "not yours" and "does not exist": nothing leaks.
    assert (
        problem(other, 404)["type"]
        == problem(missing, 404)["type"]
        == "/problems/payment-not-found"
    )
    problem(await api.client.get("/api/v1/payments", params={"order_id": order_id}), 401)


async def test_the_audit_shows_state_and_ledger_to_admins_only(api: Api) -> None:
    paid, declined = str(uuid.uuid4()), str(uuid.uuid4())
    await api.pay(paid)
    await api.command("payments.capture_payment.v1", paid)
    await api.wait(paid, lambda p: p["status"] == "captured")
    await api.command("orders.order.cancellation_requested.v1", paid, user_id="alice")
    await api.wait(paid, lambda p: p["status"] == "refunded")
    await api.pay(declined, card="tok_insufficientFunds")

    problem(await api.client.get("/internal/audit/payments"), 401)
    problem(await api.client.get("/internal/audit/payments", headers=as_user("alice")), 403)
    items = (await api.client.get("/internal/audit/payments", headers=admin())).json()["items"]
    by_order = {item["order_id"]: item for item in items}
    item = by_order[paid]
    expected = {
        "status": "refunded",
        "amount": 4200,
        "currency": "EUR",
        "authorized": 4200,
        "captured": 4200,
        "voided": 0,
        "refunded": 4200,
        "pending": [],
    }
    assert {k: item[k] for k in expected} == expected
    assert [(e["kind"], e["amount"]) for e in item["ledger"]] == [
        ("authorization", 4200),
        ("capture", 4200),
        ("refund", 4200),
    ]
    assert all(e["psp_reference"] == item["psp_authorization_id"] for e in item["ledger"])
    assert all(e["at"].endswith("Z") for e in item["ledger"])
    assert by_order[declined]["status"] == "declined"
    assert by_order[declined]["decline_reason"] == "insufficient_funds"
    assert by_order[declined]["ledger"] == []


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"order_id": ""},
        {"order_id": "x" * 65},
        {"order_id": "has space"},
        {"order_id": "semi;colon"},
        {"order_id": "nul\x00"},
        {"order_id": "ü"},
    ],
)
async def test_bad_order_ids_are_422(api: Api, params: dict[str, str]) -> None:
    answer = await api.client.get("/api/v1/payments", params=params, headers=as_user("alice"))
    problem(answer, 422)


async def test_other_bad_requests(api: Api) -> None:
    problem(await api.client.post("/api/v1/payments", json={}, headers=as_user("alice")), 405)
    problem(await api.client.get("/api/v1/nope", headers=as_user("alice")), 404)
    forged = {PRINCIPAL_HEADER: "forged.token"}
    problem(await api.client.get("/api/v1/payments", params={"order_id": "o"}, headers=forged), 401)
    problem(await api.client.get("/internal/audit/payments", headers=forged), 401)


async def test_malformed_commands_are_dead_lettered_not_retried(api: Api) -> None:
    for data in (
        {"order_id": "o1", "user_id": "u", "amount": 5, "payment_token": "tok_visa"},
        {"order_id": "o1", "user_id": "u", "amount": {"amount": -1, "currency": "EUR"}},
        {"order_id": "bad id", "user_id": "u", "amount": {"amount": 1, "currency": "EUR"}},
        {"user_id": "u"},
    ):
        data.setdefault("payment_token", "tok_visa")
        await api.bus.publish(
            Envelope(type="payments.authorize_payment.v1", source="t", subject="o1", data=data)
        )
    await api.bus.publish(
        Envelope(
            type="payments.capture_payment.v1", source="t", subject="o2", data={"order_id": "o2"}
        )
    )
    async with asyncio.timeout(5):
        while len(await api.bus.dead_letters(consumer="payments")) < 5:
            await asyncio.sleep(0.02)
    letters = await api.bus.dead_letters(consumer="payments")
    assert all(letter.attempts == 1 for letter in letters)
    assert any("no payment for order o2" in letter.reason for letter in letters)
    assert api.psp.calls == []


async def test_health(api: Api) -> None:
    assert (await api.client.get("/livez")).status_code == 200
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
