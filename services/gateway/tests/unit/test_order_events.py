"""GET /api/v1/orders/{id}/events: the gateway streams an order's changes as Server-Sent
Events, authorized exactly as GET /api/v1/orders/{id} is (orders decides), in front of small
real upstreams (aiohttp apps) playing identity, orders and payments."""

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
import pytest
from aiohttp import ClientSession, ClientTimeout, web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chassis import InternalTokenCodec
from chassis.discovery import InMemoryRegistry, ServiceInstance, utc_now
from gateway.bootstrap import build_app
from gateway.order_events import EventStreamPolicy, settled
from gateway.ratelimit import InProcessRateLimiter
from gateway.settings import GatewaySettings

SECRET = "order-events-test-secret"
KEY = Ed25519PrivateKey.generate()
OWNER, STRANGER = "user-owner", "user-stranger"
FAST = EventStreamPolicy(first_poll=0.01, max_poll=0.02, heartbeat=60, max_duration=5)


def token(subject: str) -> str:
    now = int(time.time())
    claims = {"iss": "mercato-identity", "aud": "mercato", "sub": subject, "iat": now,
              "exp": now + 300, "jti": uuid.uuid4().hex, "roles": ["customer"]}  # fmt: skip
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"})


def jwks() -> dict[str, Any]:
    raw = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA"}]}


def problem(status: int, slug: str) -> web.Response:
    return web.json_response(
        {"type": f"/problems/{slug}", "status": status, "title": slug},
        status=status, content_type="application/problem+json",
    )  # fmt: skip


@dataclass
class FakeOrders:
    """Orders as the gateway sees it: answers the owner with the next scripted state (the last
    one forever), hides the order from anyone else, and wants a signed-in caller."""

    states: list[dict[str, Any]]
    failures: set[int] = field(default_factory=set)  # answer 500 to these GETs (1-based)
    gets: int = 0

    async def get(self, request: web.Request) -> web.Response:
        header = request.headers.get("x-mercato-principal")
        if header is None:
            return problem(401, "unauthenticated")
        principal = InternalTokenCodec(SECRET.encode()).verify(header)
        if principal.subject != OWNER or request.match_info["id"] != "o-1":
            return problem(404, "order-not-found")
        self.gets += 1
        if self.gets in self.failures:
            return problem(500, "internal")
        state = self.states[min(self.gets, len(self.states)) - 1]
        return web.json_response({"id": "o-1", "cancellation": None, **state})


@dataclass
class FakePayments:
    """The order's payment: the next scripted state on each GET (the last one forever)."""

    states: list[str] = field(default_factory=lambda: ["captured"])
    gets: int = 0

    async def get(self, _: web.Request) -> web.Response:
        self.gets += 1
        return web.json_response({"status": self.states[min(self.gets, len(self.states)) - 1]})


async def serve_jwks(_: web.Request) -> web.Response:
    return web.json_response(jwks())


async def serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@dataclass
class Stack:
    base: str
    http: ClientSession
    orders: FakeOrders


@pytest.fixture
def orders() -> FakeOrders:
    return FakeOrders([{"status": "PENDING"}, {"status": "PENDING"}, {"status": "CONFIRMED"}])


@pytest.fixture
def payments() -> FakePayments:
    return FakePayments()


@pytest.fixture
def policy() -> EventStreamPolicy:
    return FAST


@pytest.fixture
async def stack(
    orders: FakeOrders, payments: FakePayments, policy: EventStreamPolicy
) -> AsyncIterator[Stack]:
    identity_app, orders_app, payments_app = web.Application(), web.Application(), web.Application()
    identity_app.router.add_get("/.well-known/jwks.json", serve_jwks)
    orders_app.router.add_get("/api/v1/orders/{id}", orders.get)
    payments_app.router.add_get("/api/v1/payments", payments.get)
    servers = [await serve(identity_app), await serve(orders_app), await serve(payments_app)]
    registry = InMemoryRegistry()
    for service, server in zip(("identity", "orders", "payments"), servers, strict=True):
        now = utc_now()
        await registry.register(ServiceInstance(
            service=service, instance_id=f"{service}-1", host="127.0.0.1", port=server.port or 0,
            started_at=now, last_heartbeat=now))  # fmt: skip
    app = build_app(
        GatewaySettings(internal_secret=SECRET, cors_origins="https://shop.example"),
        registry=registry, configure_logs=False, order_events=policy,
        limiter=InProcessRateLimiter(rate=1000, burst=1000),
    )  # fmt: skip
    gateway = await serve(app)
    try:
        async with ClientSession(timeout=ClientTimeout(total=10)) as http:
            yield Stack(f"http://127.0.0.1:{gateway.port}", http, orders)
    finally:
        await gateway.close()
        for server in servers:
            await server.close()


def parse(stream: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    """The `order` events' documents, and the other lines (retry, comments)."""
    events, other = [], []
    for block in stream.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line]
        if lines[:1] == ["event: order"]:
            assert lines[1].startswith("data: ")
            events.append(orjson.loads(lines[1].removeprefix("data: ")))
        else:
            other.extend(lines)
    return events, other


async def events_of(stack: Stack, subject: str | None = OWNER, order_id: str = "o-1") -> Any:
    headers = {"Authorization": f"Bearer {token(subject)}"} if subject else {}
    return stack.http.get(f"{stack.base}/api/v1/orders/{order_id}/events", headers=headers)


async def test_the_owner_sees_each_change_until_the_order_settles(stack: Stack) -> None:
    async with await events_of(stack) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["x-request-id"]
        body = await response.read()  # ends by itself once CONFIRMED
    events, other = parse(body)
    assert [e["status"] for e in events] == ["PENDING", "CONFIRMED"]  # unchanged polls: no event
    assert all(e["payment"] == {"status": "captured"} for e in events)  # composed like GET
    assert other[0] == "retry: 1000"
    assert stack.orders.gets == 3


async def test_a_stranger_gets_the_same_answer_as_for_get_and_no_stream(stack: Stack) -> None:
    async with stack.http.get(
        f"{stack.base}/api/v1/orders/o-1", headers={"Authorization": f"Bearer {token(STRANGER)}"}
    ) as plain:
        plain_status, plain_type = plain.status, (await plain.json())["type"]
    async with await events_of(stack, STRANGER) as response:
        assert (response.status, plain_status) == (404, 404)
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert (await response.json())["type"] == plain_type == "/problems/order-not-found"
    async with await events_of(stack, OWNER, order_id="o-2") as response:
        assert response.status == 404
    assert stack.orders.gets == 0


async def test_anonymous_and_forged_callers_are_refused(stack: Stack) -> None:
    async with await events_of(stack, None) as response:
        assert response.status == 401  # orders wants a signed-in user
        assert response.headers["Content-Type"].startswith("application/problem+json")
    forged = jwt.encode({"sub": OWNER}, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                        headers={"kid": "k1", "typ": "at+jwt"})  # fmt: skip
    async with stack.http.get(
        f"{stack.base}/api/v1/orders/o-1/events", headers={"Authorization": f"Bearer {forged}"}
    ) as response:
        assert response.status == 401  # the gateway refuses it before asking orders
        assert "WWW-Authenticate" in response.headers
    assert stack.orders.gets == 0


@pytest.mark.parametrize(
    "orders",
    [FakeOrders([{"status": "CONFIRMED", "cancellation": "requested"}, {"status": "CANCELLED"}])],
)
async def test_a_cancellation_in_progress_is_followed_to_its_end(stack: Stack) -> None:
    async with await events_of(stack) as response:
        events, _ = parse(await response.read())
    assert [(e["status"], e["cancellation"]) for e in events] == [
        ("CONFIRMED", "requested"),
        ("CANCELLED", None),
    ]


@pytest.mark.parametrize(
    ("orders", "payments"),
    [
        (
            FakeOrders([{"status": "CONFIRMED"}]),
            FakePayments(["authorized", "authorized", "captured"]),
        )
    ],
)
async def test_a_confirmed_order_is_followed_until_its_card_is_charged(stack: Stack) -> None:
    async with await events_of(stack) as response:
        events, _ = parse(await response.read())
    assert [(e["status"], e["payment"]["status"]) for e in events] == [
        ("CONFIRMED", "authorized"),
        ("CONFIRMED", "captured"),
    ]


@pytest.mark.parametrize(
    "orders",
    [FakeOrders([{"status": "PENDING"}, {"status": "PENDING"}, {"status": "REJECTED"}], {2})],
)
async def test_a_failed_poll_is_skipped_and_the_stream_goes_on(stack: Stack) -> None:
    async with await events_of(stack) as response:
        events, _ = parse(await response.read())
    assert [e["status"] for e in events] == ["PENDING", "REJECTED"]


@pytest.mark.parametrize(
    ("orders", "policy"),
    [(FakeOrders([{"status": "PENDING"}]),
      EventStreamPolicy(first_poll=0.01, max_poll=0.02, heartbeat=0.05, max_duration=0.3))],
)  # fmt: skip
async def test_a_stream_ends_after_its_time_and_keeps_idle_connections_alive(
    stack: Stack,
) -> None:
    async with await events_of(stack) as response:
        events, other = parse(await response.read())  # ends although still PENDING
    assert [e["status"] for e in events] == ["PENDING"]
    assert ": keep-alive" in other


@pytest.mark.parametrize("orders", [FakeOrders([{"status": "PENDING"}])])
async def test_polling_stops_when_the_client_leaves(stack: Stack) -> None:
    async with await events_of(stack) as response:
        assert (await response.content.readuntil(b"\n\n")).startswith(b"retry:")
        await response.content.readuntil(b"\n\n")  # the first event
    # The connection is closed; the gateway notices before its next poll.
    await asyncio.sleep(0.3)
    seen = stack.orders.gets
    await asyncio.sleep(0.3)
    assert stack.orders.gets == seen


async def test_cors_headers_go_out_before_the_stream(stack: Stack) -> None:
    async with stack.http.get(
        f"{stack.base}/api/v1/orders/o-1/events",
        headers={"Authorization": f"Bearer {token(OWNER)}", "Origin": "https://shop.example"},
    ) as response:
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        await response.read()


def test_settled_means_nothing_more_happens_without_the_owner() -> None:
    assert not settled({"status": "PENDING", "cancellation": None})
    assert not settled({"status": "PENDING", "cancellation": "requested"})
    assert settled({"status": "CONFIRMED", "cancellation": None})
    assert not settled({"status": "CONFIRMED", "cancellation": "requested"})
    assert settled({"status": "CONFIRMED", "cancellation": "refund_failed"})
    assert settled({"status": "REJECTED", "cancellation": None})
    assert settled({"status": "CANCELLED", "cancellation": None})
    # confirmed, but the capture that follows is still to come
    assert not settled({"status": "CONFIRMED", "payment": {"status": "authorized"}})
    assert settled({"status": "CONFIRMED", "payment": {"status": "captured"}})
    assert not settled({"status": "REJECTED", "payment": {"status": "pending_unknown"}})
    assert settled({"status": "REJECTED", "payment": {"status": "declined"}})
    assert settled({"status": "CONFIRMED", "payment": None})  # payments could not say
