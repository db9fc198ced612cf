"""create_app: health, problem+json for every kind of error, request ids, metrics, guards."""

import io
from collections.abc import AsyncIterator
from typing import ClassVar

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from chassis import (
    InternalTokenCodec,
    Principal,
    ServiceSettings,
    api_router,
    create_app,
    current_principal,
    require_role,
)
from chassis.errors import ConflictError, NotFoundError, TooManyRequestsError
from chassis.resilience import current_deadline


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "demo"


class Widget(BaseModel):
    name: str
    size: int


SECRET = b"test-internal-secret"


def build(*, ready: bool = True, log: io.BytesIO | None = None) -> FastAPI:
    router = api_router()

    @router.get("/widgets/{widget_id}")
    async def get_widget(widget_id: int) -> dict[str, int]:
        if widget_id == 404:
            raise NotFoundError(f"no widget {widget_id}", widget_id=widget_id)
        if widget_id == 409:
            raise ConflictError("widget is locked")
        if widget_id == 429:
            raise TooManyRequestsError("slow down", retry_after=7)
        if widget_id == 500:
            raise RuntimeError("boom: database password is hunter2")
        return {"id": widget_id}

    @router.post("/widgets", status_code=201, dependencies=[Depends(require_role("admin"))])
    async def create_widget(body: Widget) -> Widget:
        return body

    @router.get("/deadline")
    async def deadline_left() -> dict[str, float | None]:
        current = current_deadline.get()
        return {"remaining": current.remaining() if current else None}

    @router.get("/whoami")
    async def whoami(principal: Principal | None = Depends(current_principal)) -> dict[str, str]:
        return {"subject": principal.subject if principal else "anonymous"}

    async def database() -> None:
        if not ready:
            raise ConnectionRefusedError("nope")

    settings = DemoSettings(internal_secret=SECRET.decode(), max_body_bytes=2048)
    app = create_app(settings, [router], readiness={"database": database}, configure_logs=False)
    if log is not None:
        from chassis import configure_logging

        configure_logging(service="demo", instance="demo-1", stream=log)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = build()
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as http,
    ):
        yield http


def token(*roles: str, secret: bytes = SECRET, ttl: float = 60) -> str:
    return InternalTokenCodec(secret, ttl=ttl).issue(Principal("user-1", frozenset(roles)))


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/livez")).json() == {"status": "alive"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_readiness_fails_with_a_problem_when_a_check_fails() -> None:
    app = build(ready=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d") as c:
        body = assert_problem(await c.get("/readyz"), 503)
    assert body["checks"] == {"database": "failing"}
    assert "ConnectionRefusedError" in str(body["detail"])


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    missing = assert_problem(await client.get("/nowhere"), 404)
    assert missing["detail"] == "There is no resource at /nowhere."
    wrong = await client.delete("/widgets/1")
    assert_problem(wrong, 405)
    assert wrong.headers["allow"] == "GET"


async def test_validation_errors_list_every_field(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/widgets/abc"), 422)
    assert body["errors"] == [
        {"location": "path", "field": "widget_id", "message": body["errors"][0]["message"]}  # type: ignore[index]
    ]
    admin = {"x-mercato-principal": token("admin")}
    body = assert_problem(await client.post("/widgets", json={"size": "big"}, headers=admin), 422)
    fields = {error["field"] for error in body["errors"]}  # type: ignore[union-attr, index]
    assert fields == {"name", "size"}


async def test_malformed_json_is_a_400(client: httpx.AsyncClient) -> None:
    admin = {"x-mercato-principal": token("admin"), "content-type": "application/json"}
    body = assert_problem(await client.post("/widgets", content=b"{nope", headers=admin), 400)
    assert body["title"] == "Malformed JSON"


async def test_domain_errors_map_to_statuses_with_extra_fields(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/widgets/404"), 404)
    assert body["detail"] == "no widget 404"
    assert body["widget_id"] == 404
    assert body["type"] == "/problems/not-found"
    assert_problem(await client.get("/widgets/409"), 409)
    throttled = await client.get("/widgets/429")
    assert assert_problem(throttled, 429)["retry_after"] == 7
    assert throttled.headers["retry-after"] == "7"


async def test_unexpected_errors_are_500_without_details(client: httpx.AsyncClient) -> None:
    response = await client.get("/widgets/500")
    body = assert_problem(response, 500)
    assert "hunter2" not in response.text
    assert "boom" not in response.text
    assert body["request_id"] in str(body["detail"])


async def test_oversized_bodies_are_refused_declared_or_streamed(
    client: httpx.AsyncClient,
) -> None:
    admin = {"x-mercato-principal": token("admin"), "content-type": "application/json"}
    big = b'{"name": "' + b"x" * 5000 + b'", "size": 1}'
    assert_problem(await client.post("/widgets", content=big, headers=admin), 413)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    assert_problem(await client.post("/widgets", content=chunks(), headers=admin), 413)


async def test_request_id_is_echoed_generated_or_replaced_when_unsafe(
    client: httpx.AsyncClient,
) -> None:
    echoed = await client.get("/widgets/1", headers={"x-request-id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/widgets/1")
    assert len(generated.headers["x-request-id"]) == 32
    unsafe = await client.get("/widgets/1", headers={"x-request-id": "evil\tvalue" + "x" * 200})
    assert unsafe.headers["x-request-id"] != "evil\tvalue" + "x" * 200
    assert len(unsafe.headers["x-request-id"]) == 32


async def test_authorization_is_checked_before_the_body_is_read(
    client: httpx.AsyncClient,
) -> None:
    anonymous = assert_problem(await client.post("/widgets", content=b"{garbage"), 401)
    assert "errors" not in anonymous
    assert (await client.post("/widgets", content=b"{garbage")).headers["www-authenticate"]
    customer = {"x-mercato-principal": token("customer")}
    forbidden = assert_problem(await client.post("/widgets", json={}, headers=customer), 403)
    assert "errors" not in forbidden
    admin = {"x-mercato-principal": token("admin")}
    created = await client.post("/widgets", json={"name": "w", "size": 2}, headers=admin)
    assert created.status_code == 201


async def test_forged_or_expired_identity_is_refused(client: httpx.AsyncClient) -> None:
    forged = {"x-mercato-principal": token("admin", secret=b"not-the-platform-secret")}
    assert_problem(await client.post("/widgets", json={}, headers=forged), 401)
    expired = {"x-mercato-principal": token("admin", ttl=-5)}
    body = assert_problem(await client.get("/whoami", headers=expired), 401)
    assert body["detail"] == "the internal identity token has expired"
    mine = await client.get("/whoami", headers={"x-mercato-principal": token()})
    assert mine.json() == {"subject": "user-1"}
    assert (await client.get("/whoami")).json() == {"subject": "anonymous"}


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/widgets/7")
    await client.get("/widgets/8")
    text = (await client.get("/metrics")).text
    assert (
        'mercato_http_requests_total{method="GET",route="/widgets/{widget_id}",status="200"}'
        in text
    )
    assert "mercato_http_request_duration_seconds_bucket" in text
    assert "mercato_http_requests_in_flight" in text
    assert 'route="/widgets/7"' not in text


async def test_logs_are_json_lines_with_request_ids_and_no_secrets() -> None:
    sink = io.BytesIO()
    app = build(log=sink)
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d") as c,
    ):
        await c.get("/widgets/3", headers={"x-request-id": "req-42"})
        await c.get("/widgets/500")
    records = [orjson.loads(line) for line in sink.getvalue().splitlines()]
    access = next(r for r in records if r.get("request_id") == "req-42")
    assert access["event"] == "request"
    assert access["service"] == "demo"
    assert access["instance"] == "demo-1"
    assert access["status"] == 200
    assert access["route"] == "/widgets/{widget_id}"
    assert access["level"] == "info"
    assert access["time"].endswith("Z")
    crash = next(r for r in records if r["event"] == "unhandled_error")
    assert "RuntimeError" in crash["exception"]


async def test_the_callers_deadline_bounds_the_work_or_refuses_it(
    client: httpx.AsyncClient,
) -> None:
    within = await client.get("/deadline", headers={"x-mercato-deadline-ms": "1500"})
    assert 1.0 < within.json()["remaining"] <= 1.5
    assert (await client.get("/deadline")).json() == {"remaining": None}
    assert_problem(await client.get("/deadline", headers={"x-mercato-deadline-ms": "0"}), 504)
    bad = assert_problem(
        await client.get("/deadline", headers={"x-mercato-deadline-ms": "soon"}), 400
    )
    assert "X-Mercato-Deadline-Ms" in str(bad["detail"])
