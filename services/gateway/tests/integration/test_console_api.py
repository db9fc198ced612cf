"""The console's API over real HTTP: the gateway in front of small real stand-ins for orders,
the psp and the supervisor (aiohttp apps that record what they were asked), span files on
disk, and a nats-server of its own for the dead letters."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from chassis import PRINCIPAL_HEADER, EmbeddedNatsServer, InternalTokenCodec
from chassis.discovery import InMemoryRegistry, ServiceInstance, utc_now
from chassis.messaging import (
    Delivery,
    Envelope,
    MessageBus,
    PermanentError,
    RetryPolicy,
    bus_from_url,
)
from chassis.tracing import SpanRecord, configure_tracing
from gateway.bootstrap import build_app
from gateway.console.sampler import Sampler
from gateway.ratelimit import InProcessRateLimiter
from gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

SECRET = "console-test-secret"
KID = "key-1"
CODEC = InternalTokenCodec(SECRET.encode())


def token(key: Ed25519PrivateKey, *roles: str, subject: str = "user-1") -> str:
    now = int(time.time())
    claims = {"iss": "mercato-identity", "aud": "mercato", "sub": subject, "iat": now,
              "exp": now + 300, "roles": list(roles), "email": f"{subject}@example.com"}  # fmt: skip
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": KID, "typ": "at+jwt"})


def jwks(key: Ed25519PrivateKey) -> dict[str, Any]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": KID, "alg": "EdDSA"}]}


@dataclass
class StandIn:
    """A small real service: answers what a test gave it and records what it was asked."""

    name: str
    routes: dict[tuple[str, str], Any]
    ready: bool = True
    seen: list[dict[str, Any]] = field(default_factory=list)
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)
    server: TestServer | None = None

    def __post_init__(self) -> None:
        self.requests = Counter("mercato_http_requests_total", "", ["route", "method", "status"],
                                registry=self.metrics)  # fmt: skip
        self.breaker = Gauge("mercato_circuit_breaker_state", "", ["breaker"],
                             registry=self.metrics)  # fmt: skip

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append({"method": request.method, "path": request.path,
                          "query": dict(request.query), "headers": request.headers.copy(),
                          "body": body})  # fmt: skip
        if request.path == "/readyz":
            return web.json_response(
                {"status": "ready" if self.ready else "not ready",
                 "checks": {"database": "ok" if self.ready else "failing"}},
                status=200 if self.ready else 503,
            )  # fmt: skip
        if request.path == "/metrics":
            return web.Response(body=generate_latest(self.metrics), content_type="text/plain")
        found = self.routes.get((request.method, request.path))
        if found is None:
            return web.json_response({"type": "/problems/not-found", "status": 404,
                                      "detail": f"no {request.path}"}, status=404,
                                     content_type="application/problem+json")  # fmt: skip
        status, document = found(body) if callable(found) else found
        self.requests.labels(request.path, request.method, str(status)).inc()
        return web.json_response(document, status=status)

    async def start(self) -> ServiceInstance:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        now = utc_now()
        return ServiceInstance(service=self.name.split("-")[0], instance_id=self.name,
                               host="127.0.0.1", port=self.server.port or 0, version="9.9.9",
                               started_at=now, last_heartbeat=now)  # fmt: skip


def psp_faults() -> Any:
    knobs = {"latency_ms": 0, "error_rate": 0.0, "timeout_after_charge_rate": 0.0,
             "timeout_seconds": 30.0}  # fmt: skip

    def put(body: bytes) -> tuple[int, Any]:
        wanted = orjson.loads(body)
        if not 0 <= wanted.get("latency_ms", 0) <= 60_000:
            return 422, {"type": "/problems/validation", "status": 422, "detail": "latency_ms"}
        knobs.update(wanted)
        return 200, dict(knobs)

    return {("GET", "/v1/_faults"): lambda _: (200, dict(knobs)), ("PUT", "/v1/_faults"): put}


SAGA = {"id": "saga-1", "saga_type": "checkout", "correlation_id": "order-1",
        "status": "COMPLETED", "history": [], "plan": []}  # fmt: skip
A = "a" * 32


@dataclass
class Console:
    url: str
    http: ClientSession
    key: Ed25519PrivateKey
    orders: StandIn
    psps: list[StandIn]
    supervisor: list[dict[str, Any]]
    nats_url: str

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(self.key, 'admin', subject='ops')}"}

    async def call(
        self, method: str, path: str, *, as_admin: bool = True, **kwargs: Any
    ) -> tuple[int, Any, Any]:
        headers = {**(self.admin() if as_admin else {}), **kwargs.pop("headers", {})}
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as r:
            body = await r.read()
            return r.status, r.headers.copy(), orjson.loads(body) if body else None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


async def supervisor_stand_in(kills: list[dict[str, Any]]) -> TestServer:
    async def instances(request: web.Request) -> web.Response:
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return web.json_response({"detail": "no"}, status=401)
        return web.json_response({"items": [
            {"instance_id": "orders-1", "pid": 4242, "running": True, "restarts": 2},
        ]})  # fmt: skip

    async def kill(request: web.Request) -> web.Response:
        target = request.match_info["instance_id"]
        kills.append({"instance": target, "authorization": request.headers.get("authorization")})
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return web.json_response({"detail": "no"}, status=401)
        if target != "orders-1":
            return web.json_response({"detail": f"no instance {target!r} here"}, status=404)
        return web.json_response({"instance_id": target, "pid": 4242, "signal": "SIGKILL"},
                                 status=202)  # fmt: skip

    app = web.Application()
    app.router.add_get("/instances", instances)
    app.router.add_post("/instances/{instance_id}/kill", kill)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def span_files(directory: Path) -> None:
    spans = [
        SpanRecord(A, "01", None, "GET /api/v1/orders", "server", "gateway", "gateway-1", 0, 9, "unset"),
        SpanRecord(A, "02", "01", "GET orders", "client", "gateway", "gateway-1", 1, 8, "unset"),
        SpanRecord(A, "03", "02", "GET /x", "server", "orders", "orders-1", 2, 7, "unset",
                   attributes={"saga.id": "saga-1"}),
    ]  # fmt: skip
    directory.mkdir()
    (directory / "all.jsonl").write_bytes(
        b"".join(orjson.dumps(s.to_json()) + b"\n" for s in spans)
    )


async def start_console(
    tmp_path: Path, nats_url: str, *, supervised: bool = True
) -> AsyncIterator[Console]:
    # As the gateway's start-up does (parent-based sampling): the console's calls rely on it.
    configure_tracing(service="gateway", instance="gateway-test")
    key = Ed25519PrivateKey.generate()
    identity = StandIn("identity-1", {("GET", "/.well-known/jwks.json"): (200, jwks(key))})
    orders = StandIn("orders-1", {
        ("GET", "/internal/sagas"): (200, {"items": [SAGA], "next_cursor": None}),
        ("GET", "/internal/sagas/saga-1"): (200, SAGA),
    })  # fmt: skip
    psps = [StandIn("psp-1", psp_faults()), StandIn("psp-2", psp_faults(), ready=False)]
    registry = InMemoryRegistry()
    kills: list[dict[str, Any]] = []
    span_files(tmp_path / "traces")
    async with AsyncExitStack() as stack:
        stack.callback(configure_tracing, service="unconfigured", instance="-")
        for stand_in in (identity, orders, *psps):
            await registry.register(await stand_in.start())
            assert stand_in.server is not None
            stack.push_async_callback(stand_in.server.close)
        now = utc_now()
        await registry.register(ServiceInstance(service="catalog", instance_id="catalog-1",
                                                host="127.0.0.1", port=1, started_at=now,
                                                last_heartbeat=now))  # fmt: skip
        orders.breaker.labels("catalog").set(1)
        supervisor = await supervisor_stand_in(kills)
        stack.push_async_callback(supervisor.close)
        settings = GatewaySettings(
            internal_secret=SECRET, broker_url=nats_url, trace_dir=tmp_path / "traces",
            supervisor_url=f"http://127.0.0.1:{supervisor.port}" if supervised else "",
            instance_id="gateway-test",
        )  # fmt: skip
        app = build_app(
            settings, registry=registry, configure_logs=False,
            limiter=InProcessRateLimiter(rate=1000, burst=1000),
            console_sampler=Sampler(registry, interval=0.2, timeout=1.0),
        )  # fmt: skip
        gateway = TestServer(app, host="127.0.0.1")
        await gateway.start_server()
        stack.push_async_callback(gateway.close)
        http = await stack.enter_async_context(ClientSession())
        yield Console(f"http://127.0.0.1:{gateway.port}", http, key, orders, psps, kills,
                      nats_url)  # fmt: skip


@pytest.fixture
async def console(tmp_path: Path, nats_server: EmbeddedNatsServer) -> AsyncIterator[Console]:
    async for built in start_console(tmp_path, nats_server.url):
        yield built


ROUTES = [
    ("GET", "/api/v1/console/services"),
    ("GET", "/api/v1/console/sagas/saga-1"),
    ("GET", "/api/v1/console/traces"),
    ("PUT", "/api/v1/console/faults/psp"),
    ("POST", "/api/v1/console/instances/orders-1/kill"),
    ("POST", "/api/v1/console/dead-letters/x/replay"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_only_admins_get_in(console: Console, method: str, path: str) -> None:
    customer = {"Authorization": f"Bearer {token(console.key, 'customer')}"}
    expired = token(console.key, "admin")
    for headers, status in (({}, 401), (customer, 403),
                            ({"Authorization": f"Basic {expired}"}, 401)):  # fmt: skip
        got, answer_headers, body = await console.call(
            method, path, as_admin=False, headers=headers, json={"latency_ms": 1}
        )
        assert got == status
        assert answer_headers["content-type"] == "application/problem+json"
        assert body["status"] == status and body["instance"] == path
    assert console.supervisor == []  # nothing was killed
    assert all(s["method"] == "GET" for p in console.psps for s in p.seen)  # nor changed


async def test_the_service_map_says_who_is_ready_and_who_calls_whom(console: Console) -> None:
    status, headers, body = await console.call("GET", "/api/v1/console/services")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    by_name = {s["name"]: s for s in body["services"]}
    assert list(by_name)[:8] == ["gateway", "identity", "catalog", "inventory", "orders",
                                 "payments", "notifications", "psp"]  # fmt: skip
    assert by_name["inventory"] == {"name": "inventory", "ready": 0, "instances": []}
    [orders] = by_name["orders"]["instances"]
    assert orders["ready"] is True and orders["version"] == "9.9.9"
    assert (orders["pid"], orders["restarts"]) == (4242, 2)  # from the supervisor
    assert orders["uptime_seconds"] >= 0
    psp1, psp2 = by_name["psp"]["instances"]
    assert psp1["ready"] and not psp2["ready"]
    assert psp2["checks"] == {"database": "failing"} and psp2["error"] == "HTTP 503"
    [catalog] = by_name["catalog"]["instances"]
    assert catalog["ready"] is False and catalog["error"] == "connection refused"
    assert body["supervisor"] == {"available": True} and body["this_instance"] == "gateway-test"
    edges = {(e["from"], e["to"], e["kind"]): e for e in body["edges"]}
    assert edges[("gateway", "orders", "call")]["source"] == "traces"
    assert edges[("payments", "psp", "call")]["source"] == "design"
    # The console's own calls are not traced: the sampled flag of their traceparent is off.
    probes = [s for s in console.orders.seen if s["path"] == "/readyz"]
    assert probes and all(s["headers"]["traceparent"].endswith("-00") for s in probes)


async def test_sagas_are_asked_of_orders_as_the_admin(console: Console) -> None:
    status, _, body = await console.call(
        "GET", "/api/v1/console/sagas?status=COMPLETED&limit=5&cursor=abc"
    )
    assert status == 200 and body["items"][0]["id"] == "saga-1"
    [asked] = [s for s in console.orders.seen if s["path"] == "/internal/sagas"]
    assert asked["query"] == {"status": "COMPLETED", "limit": "5", "cursor": "abc"}
    principal = CODEC.verify(asked["headers"][PRINCIPAL_HEADER])
    assert principal.subject == "ops" and "admin" in principal.roles
    assert asked["headers"]["traceparent"].endswith("-00")

    status, _, body = await console.call("GET", "/api/v1/console/sagas/saga-1")
    assert status == 200 and body["trace_id"] == A  # the trace its steps ran in

    status, headers, body = await console.call("GET", "/api/v1/console/sagas/nope")
    assert status == 404 and headers["content-type"].startswith("application/problem+json")

    asked_before = sum(1 for s in console.orders.seen if s["path"] == "/internal/sagas")
    status, _, body = await console.call("GET", "/api/v1/console/sagas?status=DONE")
    assert status == 422 and body["errors"][0]["field"] == "status"
    status, _, body = await console.call("GET", "/api/v1/console/sagas?limit=1000")
    assert status == 422
    asked_after = sum(1 for s in console.orders.seen if s["path"] == "/internal/sagas")
    assert asked_after == asked_before  # refused before asking orders


async def test_traces_from_the_span_files(console: Console) -> None:
    status, _, body = await console.call("GET", "/api/v1/console/traces?view=slowest")
    assert status == 200 and [t["trace_id"] for t in body["items"]] == [A]
    status, _, body = await console.call("GET", f"/api/v1/console/traces/{A}")
    assert status == 200 and [s["depth"] for s in body["spans"]] == [0, 1, 2]
    status, _, _ = await console.call("GET", f"/api/v1/console/traces/{'b' * 32}")
    assert status == 404
    status, _, _ = await console.call("GET", "/api/v1/console/traces?view=fastest")
    assert status == 422


async def test_metrics_and_breakers_come_from_scraping_every_instance(console: Console) -> None:
    for _ in range(200):
        await console.call("GET", "/api/v1/console/sagas")  # traffic orders counts
        status, _, series = await console.call("GET", "/api/v1/console/metrics?minutes=5")
        if (
            status == 200
            and len(series["times"]) >= 2
            and any(series["services"]["orders"]["rate"])
        ):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"no rates after a while: {series}")
    assert series["interval_seconds"] == 0.2
    assert set(series["services"]) >= {"orders", "psp", "identity"}
    status, _, body = await console.call("GET", "/api/v1/console/resilience")
    assert status == 200
    assert {"service": "orders", "instance_id": "orders-1", "target": "catalog",
            "state": "open"} in body["breakers"]  # fmt: skip
    assert "catalog-1" in body["not_scraped"]


async def test_the_psp_knobs_are_set_on_every_psp_instance(console: Console) -> None:
    wanted = {"latency_ms": 250, "error_rate": 0.1, "timeout_after_charge_rate": 0.0}
    status, _, body = await console.call("PUT", "/api/v1/console/faults/psp", json=wanted)
    assert status == 200 and body["knobs"]["latency_ms"] == 250
    for psp in console.psps:
        [put] = [s for s in psp.seen if s["method"] == "PUT"]
        assert orjson.loads(put["body"]) == wanted
        assert CODEC.verify(put["headers"][PRINCIPAL_HEADER]).is_admin
    status, _, body = await console.call("GET", "/api/v1/console/faults/psp")
    assert [i["knobs"]["latency_ms"] for i in body["instances"]] == [250, 250]
    status, _, body = await console.call("PUT", "/api/v1/console/faults/psp",
                                         json={"latency_ms": -1})  # fmt: skip
    assert status == 422 and body["detail"] == "latency_ms"  # the psp's own answer
    status, _, body = await console.call("PUT", "/api/v1/console/faults/psp", data=b"[1]")
    assert status == 422


async def test_an_instance_is_killed_through_the_supervisor(console: Console) -> None:
    status, _, body = await console.call("POST", "/api/v1/console/instances/orders-1/kill")
    assert status == 202 and body == {"instance_id": "orders-1", "pid": 4242, "signal": "SIGKILL"}
    assert console.supervisor == [{"instance": "orders-1", "authorization": f"Bearer {SECRET}"}]
    status, _, body = await console.call("POST", "/api/v1/console/instances/orders-9/kill")
    assert status == 404 and body["detail"] == "no instance 'orders-9' here"


async def test_without_a_supervisor_killing_is_unavailable(
    tmp_path: Path, nats_server: EmbeddedNatsServer
) -> None:
    async for console in start_console(tmp_path, nats_server.url, supervised=False):
        status, _, body = await console.call("GET", "/api/v1/console/services")
        assert body["supervisor"] == {"available": False}
        assert body["services"][4]["instances"][0]["restarts"] is None
        status, _, body = await console.call("POST", "/api/v1/console/instances/orders-1/kill")
        assert status == 501 and body["type"] == "/problems/not-available-here"


async def test_dead_letters_are_listed_replayed_and_discarded(console: Console) -> None:
    bus: MessageBus = bus_from_url(console.nats_url, service="consumer")
    await bus.start()
    handled: list[str] = []
    healthy = asyncio.Event()

    async def handler(envelope: Envelope, _: Delivery) -> None:
        if not healthy.is_set():
            raise PermanentError("cannot charge this")
        handled.append(envelope.id)

    try:
        await bus.subscribe("payments", ["payments.authorize_payment.v1"], handler,
                            retry=RetryPolicy(max_attempts=1))  # fmt: skip
        poison = [Envelope(type="payments.authorize_payment.v1", source="test", subject=f"o-{i}",
                           data={"order_id": f"o-{i}", "payment_token": "tok_visa"})
                  for i in range(2)]  # fmt: skip
        for envelope in poison:
            await bus.publish(envelope)
        letters: list[dict[str, Any]] = []
        for _ in range(100):
            status, _, body = await console.call("GET", "/api/v1/console/dead-letters")
            letters = body["items"] if status == 200 else []
            if len(letters) == 2:
                break
            await asyncio.sleep(0.1)
        assert [x["message_id"] for x in letters] == [e.id for e in poison]
        first, second = letters
        assert first["consumer"] == "payments" and "cannot charge this" in first["reason"]
        assert first["envelope"]["data"] == {"order_id": "o-0", "payment_token": "[redacted]"}

        healthy.set()  # the consumer is fixed: replaying delivers again, to it only
        status, _, _ = await console.call(
            "POST", f"/api/v1/console/dead-letters/{first['id']}/replay"
        )
        assert status == 200
        for _ in range(100):
            if handled:
                break
            await asyncio.sleep(0.05)
        assert handled == [poison[0].id]
        status, _, _ = await console.call(
            "POST", f"/api/v1/console/dead-letters/{second['id']}/discard"
        )
        assert status == 200
        status, _, body = await console.call("GET", "/api/v1/console/dead-letters")
        assert body["items"] == []
        status, _, body = await console.call(
            "POST", f"/api/v1/console/dead-letters/{uuid.uuid4().hex}/replay"
        )
        assert status == 404
    finally:
        await bus.close()


async def test_the_console_page_is_served_at_console(console: Console) -> None:
    async with console.http.get(console.url + "/console") as answer:
        page = await answer.text()
        assert answer.status == 200
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    assert '<script type="module" src="/console/assets/' in page
