"""Payments as a saga participant against a real psp (`python -m psp` on a free port).

Commands go in through an in-memory bus (and once through a real nats-server); replies are
read from it. The psp's own audit is the judge: never more than one authorization per
order, whatever is duplicated, timed out or failing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from chassis import PRINCIPAL_HEADER, EmbeddedNatsServer, InternalTokenCodec, Principal, free_port
from chassis.messaging import Delivery, Envelope, InMemoryMessageBus, MessageBus, NatsJetStreamBus
from payments.bootstrap import build_app
from payments.settings import PaymentsSettings

SECRET = "payments-psp-test-secret"
AUTHORIZE = "payments.authorize_payment.v1"
VOID = "payments.void_payment.v1"
CAPTURE = "payments.capture_payment.v1"
CANCELLATION = "orders.order.cancellation_requested.v1"


def admin() -> dict[str, str]:
    token = InternalTokenCodec(SECRET.encode()).issue(Principal("root", frozenset({"admin"})))
    return {PRINCIPAL_HEADER: token}


@dataclass
class Psp:
    url: str

    def set_faults(self, **knobs: Any) -> None:
        answer = httpx.put(f"{self.url}/v1/_faults", json=knobs, headers=admin(), timeout=5)
        answer.raise_for_status()

    async def charges(self, order_id: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.get(f"{self.url}/internal/audit/charges", headers=admin())
        items: list[dict[str, Any]] = answer.json()["items"]
        return [item for item in items if item["reference"] == order_id]


@pytest.fixture(scope="module")
def psp_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Psp]:
    """One psp for the module (every test uses its own order ids)."""
    home = tmp_path_factory.mktemp("psp")
    port = free_port()
    env = {
        **os.environ,
        "MERCATO_ENVIRONMENT": "test",
        "MERCATO_DATA_DIR": str(home),
        "MERCATO_INTERNAL_SECRET": SECRET,
        "MERCATO_REGISTRY_URL": "",
        "MERCATO_LOG_LEVEL": "warning",
        "PSP_HOST": "127.0.0.1",
        "PSP_PORT": str(port),
        "PSP_DATABASE_URL": f"sqlite+aiosqlite:///{home}/psp.db",
        "PSP_SHUTDOWN_TIMEOUT": "1",
    }
    with (home / "psp.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "psp"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"psp did not start: {(home / 'psp.log').read_text()}")
            time.sleep(0.05)
        yield Psp(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def psp(psp_process: Psp) -> Iterator[Psp]:
    psp_process.set_faults()
    yield psp_process
    psp_process.set_faults()


@dataclass
class Saga:
    """The orchestrator's side of the conversation: sends commands, collects replies."""

    bus: MessageBus
    seen: list[Envelope] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_reply(self, envelope: Envelope, _: Delivery) -> None:
        self.seen.append(envelope)
        self.changed.set()

    async def send(self, type_: str, order_id: str, **data: Any) -> Envelope:
        envelope = Envelope(
            type=type_, source="orders", subject=order_id, data={"order_id": order_id, **data}
        )
        await self.bus.publish(envelope)
        return envelope

    async def authorize(
        self, order_id: str, card: str = "tok_visa", amount: int = 3100
    ) -> Envelope:
        money = {"amount": amount, "currency": "EUR"}
        return await self.send(AUTHORIZE, order_id, user_id="u1", amount=money, payment_token=card)

    def replies(self, order_id: str) -> list[str]:
        return [e.type.split(".")[2] for e in self.seen if e.subject == order_id]

    async def reply(
        self, order_id: str, kind: str, *, count: int = 1, timeout: float = 15
    ) -> Envelope:
        """Wait for the `count`-th reply of `kind` (authorized, declined, ...) for the order."""
        async with asyncio.timeout(timeout):
            while True:
                found = [
                    e for e in self.seen if e.subject == order_id and e.type.split(".")[2] == kind
                ]
                if len(found) >= count:
                    return found[count - 1]
                self.changed.clear()
                await self.changed.wait()


Running = Callable[..., AbstractAsyncContextManager[tuple[Saga, httpx.AsyncClient]]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/payments.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/payments.db"


def settings_for(psp: Psp, url: str, tmp_path: Path, **overrides: Any) -> PaymentsSettings:
    values: dict[str, Any] = {
        "database_url": url,
        "internal_secret": SECRET,
        "data_dir": tmp_path,
        "environment": "test",
        "registry_url": f"static:psp={psp.url}",
        "psp_timeout": 0.5,
        "psp_attempts": 2,
        "psp_breaker_wait": 0.3,
        "retry_base_delay": 0.05,
        "retry_max_delay": 0.3,
        "reconcile_interval": 0.3,
    }
    values.update(overrides)
    return PaymentsSettings(**values)


@pytest.fixture
def running(psp: Psp, tmp_path: Path) -> Running:
    @asynccontextmanager
    async def run(
        url: str, *, bus: MessageBus | None = None, **overrides: Any
    ) -> AsyncIterator[tuple[Saga, httpx.AsyncClient]]:
        bus = bus or InMemoryMessageBus()
        await bus.start()
        saga = Saga(bus)
        await bus.subscribe("saga", ["payments.payment.>"], saga.on_reply)
        app = build_app(settings_for(psp, url, tmp_path, **overrides), bus=bus)
        async with (
            LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as api,
        ):
            yield saga, api

    return run


async def audit(api: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    items = (await api.get("/internal/audit/payments", headers=admin())).json()["items"]
    absent = {"status": None, "pending": [{"attempts": 0}]}  # not consumed yet
    return next((item for item in items if item["order_id"] == order_id), absent)


def new_order() -> str:
    return str(uuid.uuid4())


async def test_authorize_approves_declines_and_refuses_bad_tokens(
    running: Running, database_url: str, psp: Psp
) -> None:
    async with running(database_url) as (saga, api):
        approved, declined, poor, bogus = (new_order() for _ in range(4))
        command = await saga.authorize(approved)
        await saga.authorize(declined, card="tok_chargeDeclined")
        await saga.authorize(poor, card="tok_insufficientFunds")
        await saga.authorize(bogus, card="tok_bogus")

        reply = await saga.reply(approved, "authorized")
        payment = await audit(api, approved)
        assert reply.data == {
            "order_id": approved,
            "payment_id": payment["payment_id"],
            "amount": {"amount": 3100, "currency": "EUR"},
        }
        assert (reply.causation_id, reply.correlation_id) == (command.id, command.id)
        [charge] = await psp.charges(approved)
        assert (charge["status"], charge["amount"], charge["idempotency_key"]) == (
            "authorized", 3100, f"{approved}:authorize",
        )  # fmt: skip
        assert payment["psp_authorization_id"] == charge["id"]

        for order_id, reason in (
            (declined, "card_declined"),
            (poor, "insufficient_funds"),
            (bogus, "invalid_token"),
        ):
            assert (await saga.reply(order_id, "declined")).data == {
                "order_id": order_id,
                "reason": reason,
            }
        assert len(await psp.charges(declined)) == 1  # a declined charge is on the psp's books
        assert await psp.charges(bogus) == []


async def test_void_capture_and_refund(running: Running, sqlite_url: str, psp: Psp) -> None:
    async with running(sqlite_url) as (saga, api):
        voided, kept, never_seen = new_order(), new_order(), new_order()
        await saga.authorize(voided)
        await saga.reply(voided, "authorized")
        await saga.send(VOID, voided)
        await saga.reply(voided, "voided")
        [charge] = await psp.charges(voided)
        assert charge["status"] == "voided"

        await saga.send(VOID, never_seen)  # voiding nothing still replies voided
        assert (await saga.reply(never_seen, "voided")).data == {"order_id": never_seen}
        await saga.authorize(never_seen)  # a late authorize must not charge
        await saga.reply(never_seen, "voided", count=2)
        assert await psp.charges(never_seen) == []

        await saga.authorize(kept)
        await saga.reply(kept, "authorized")
        await saga.send(CAPTURE, kept)
        captured = await saga.reply(kept, "captured")
        assert captured.data == {"order_id": kept, "amount": {"amount": 3100, "currency": "EUR"}}
        await saga.send(CANCELLATION, kept, user_id="u1", total={"amount": 3100, "currency": "EUR"},
                        lines=[{"sku": "MUG-1", "quantity": 1}])  # fmt: skip
        refunded = await saga.reply(kept, "refunded")
        assert refunded.data == {"order_id": kept, "amount": {"amount": 3100, "currency": "EUR"}}
        [charge] = await psp.charges(kept)
        assert (charge["status"], charge["captured_amount"], charge["refunded_amount"]) == (
            "refunded", 3100, 3100,
        )  # fmt: skip
        payment = await audit(api, kept)
        assert [(e["kind"], e["amount"]) for e in payment["ledger"]] == [
            ("authorization", 3100),
            ("capture", 3100),
            ("refund", 3100),
        ]
        assert saga.replies(kept) == ["authorized", "captured", "refunded"]


async def test_duplicate_commands_never_charge_twice(
    running: Running, sqlite_url: str, psp: Psp
) -> None:
    async with running(sqlite_url) as (saga, _):
        order_id = new_order()
        first = await saga.authorize(order_id)
        await saga.bus.publish(first)  # a redelivery of the same message
        await saga.authorize(order_id)  # the orchestrator re-issuing the step
        await saga.authorize(order_id)
        await saga.reply(order_id, "authorized")
        await saga.authorize(order_id)
        await saga.reply(order_id, "authorized", count=2)
        # Duplicates while the psp call is in flight share its one answer; later ones get
        # the same answer again.
        for _ in range(3):
            await saga.send(CAPTURE, order_id)
        await saga.reply(order_id, "captured")
        await saga.send(CAPTURE, order_id)
        await saga.reply(order_id, "captured", count=2)
        for _ in range(2):
            await saga.send(CANCELLATION, order_id, user_id="u1")
        await saga.reply(order_id, "refunded")
        await saga.send(CANCELLATION, order_id, user_id="u1")
        await saga.reply(order_id, "refunded", count=2)
        [charge] = await psp.charges(order_id)
        assert (charge["captured_amount"], charge["refunded_amount"]) == (3100, 3100)
        refunds = [e for e in saga.seen if e.subject == order_id and e.type.endswith("refunded.v1")]
        assert {e.data["amount"]["amount"] for e in refunds} == {3100}


async def test_timeout_after_charge_is_reconciled_never_doubled(
    running: Running, sqlite_url: str, psp: Psp
) -> None:
    # Every answer that took effect is held back: the psp charges, payments never hears it.
    psp.set_faults(timeout_after_charge_rate=1.0, timeout_seconds=5)
    async with running(sqlite_url, retry_base_delay=0.6, retry_max_delay=0.6) as (saga, api):
        order_id = new_order()
        await saga.authorize(order_id)
        statuses = set()
        async with asyncio.timeout(15):
            while "authorized" not in saga.replies(order_id):
                statuses.add((await audit(api, order_id))["status"])
                await asyncio.sleep(0.03)
        assert "pending_unknown" in statuses  # not declined: unknown, then reconciled
        assert saga.replies(order_id) == ["authorized"]
        [charge] = await psp.charges(order_id)
        assert charge["status"] == "authorized"

        # Captures and refunds whose answers are lost are reconciled the same way.
        await saga.send(CAPTURE, order_id)
        await saga.reply(order_id, "captured")
        await saga.send(CANCELLATION, order_id, user_id="u1")
        await saga.reply(order_id, "refunded")
        [charge] = await psp.charges(order_id)
        assert (charge["status"], charge["refunded_amount"]) == ("refunded", 3100)
        assert saga.replies(order_id) == ["authorized", "captured", "refunded"]


async def test_a_burst_of_psp_errors_is_retried_then_succeeds(
    running: Running, sqlite_url: str, psp: Psp
) -> None:
    psp.set_faults(error_rate=1.0)
    async with running(sqlite_url) as (saga, api):
        order_id = new_order()
        await saga.authorize(order_id)
        async with asyncio.timeout(10):
            while True:
                if (await audit(api, order_id))["pending"][0]["attempts"] >= 3:
                    break
                await asyncio.sleep(0.05)
        assert saga.replies(order_id) == []  # waiting, not declined
        psp.set_faults()
        await saga.reply(order_id, "authorized")
        assert len(await psp.charges(order_id)) == 1


async def test_a_restart_picks_up_what_was_requested(
    running: Running, sqlite_url: str, psp: Psp
) -> None:
    psp.set_faults(error_rate=1.0)
    order_id = new_order()
    async with running(sqlite_url) as (saga, api):
        await saga.authorize(order_id)
        async with asyncio.timeout(10):
            while not (await audit(api, order_id))["pending"][0]["attempts"]:
                await asyncio.sleep(0.05)
    psp.set_faults()
    # A new process on the same database: no command wakes it, its sweep finds the operation.
    async with running(sqlite_url, reconcile_interval=0.2) as (saga, _):
        await saga.reply(order_id, "authorized", timeout=15)
        assert saga.replies(order_id) == ["authorized"]
    assert len(await psp.charges(order_id)) == 1


@pytest.mark.integration
async def test_over_a_real_nats_server(
    running: Running, sqlite_url: str, tmp_path: Path, psp: Psp
) -> None:
    nats = EmbeddedNatsServer(tmp_path / "nats")
    await asyncio.to_thread(nats.start)
    try:
        orders = NatsJetStreamBus([nats.url], name="orders-test")
        async with running(sqlite_url, bus=orders, broker_url=nats.url) as (saga, _):
            order_id = new_order()
            await saga.authorize(order_id)
            reply = await saga.reply(order_id, "authorized", timeout=20)
            assert reply.source == "payments"
            await saga.send(VOID, order_id)
            await saga.reply(order_id, "voided", timeout=20)
        [charge] = await psp.charges(order_id)
        assert charge["status"] == "voided"
    finally:
        await asyncio.to_thread(nats.stop)
