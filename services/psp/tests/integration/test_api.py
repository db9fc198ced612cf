"""The psp over HTTP, on SQLite and on PostgreSQL: idempotency, tokens, knobs, audit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from chassis import PRINCIPAL_HEADER, InternalTokenCodec, Principal
from psp.bootstrap import build_app
from psp.settings import PspSettings

SECRET = "psp-test-internal-secret"

Serving = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def principal(*roles: str) -> dict[str, str]:
    token = InternalTokenCodec(SECRET.encode()).issue(Principal("someone", frozenset(roles)))
    return {PRINCIPAL_HEADER: token}


def admin() -> dict[str, str]:
    return principal("admin")


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def charge(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": 2599,
        "currency": "EUR",
        "token": "tok_visa",
        "reference": "order-1",
    }
    body.update(overrides)
    return body


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/psp.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def serving(database_url: str, tmp_path: Path) -> Serving:
    @asynccontextmanager
    async def serve(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        values: dict[str, Any] = {
            "database_url": database_url,
            "internal_secret": SECRET,
            "data_dir": tmp_path,
            "environment": "test",
            "fault_seed": 1,
        }
        values.update(overrides)
        app = build_app(PspSettings(**values))
        async with (
            LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://psp"
            ) as client,
        ):
            yield client

    return serve


@pytest.fixture
async def api(serving: Serving) -> AsyncIterator[httpx.AsyncClient]:
    async with serving() as client:
        yield client


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


async def authorize(api: httpx.AsyncClient, idempotency_key: str, **body: Any) -> httpx.Response:
    return await api.post("/v1/authorizations", json=charge(**body), headers=key(idempotency_key))


async def test_tokens_decide_approve_or_decline(api: httpx.AsyncClient) -> None:
    approved = await authorize(api, "a1")
    assert approved.status_code == 201, approved.text
    body = approved.json()
    assert body["status"] == "authorized"
    assert body["decline_code"] is None
    assert (body["amount"], body["currency"], body["reference"]) == (2599, "EUR", "order-1")
    assert body["id"].startswith("auth_")

    for token, code in (
        ("tok_chargeDeclined", "card_declined"),
        ("tok_insufficientFunds", "insufficient_funds"),
    ):
        declined = await authorize(api, f"k-{token}", token=token)
        assert declined.status_code == 201
        assert (declined.json()["status"], declined.json()["decline_code"]) == ("declined", code)

    invalid = problem(await authorize(api, "a9", token="tok_bogus"), 400)
    assert invalid["code"] == "invalid_token"
    assert invalid["type"] == "/problems/invalid-token"


async def test_same_key_same_answer_other_body_422(api: httpx.AsyncClient) -> None:
    first = await authorize(api, "order-1:authorize")
    again = await authorize(api, "order-1:authorize")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers

    reused = problem(await authorize(api, "order-1:authorize", amount=1), 422)
    assert reused["type"] == "/problems/idempotency-key-reused"
    # A refusal is an answer too, replayed as such.
    bad = problem(await authorize(api, "k-bad", token="tok_nope"), 400)
    assert problem(await authorize(api, "k-bad", token="tok_nope"), 400)["detail"] == bad["detail"]

    audit = (await api.get("/internal/audit/charges", headers=admin())).json()["items"]
    assert [item["idempotency_key"] for item in audit] == ["order-1:authorize"]


async def test_concurrent_requests_with_one_key_charge_once(api: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(authorize(api, "race") for _ in range(8)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    audit = (await api.get("/internal/audit/charges", headers=admin())).json()["items"]
    assert len(audit) == 1


async def test_capture_void_refund_lifecycle(api: httpx.AsyncClient) -> None:
    auth_id = (await authorize(api, "o1:authorize", amount=1000)).json()["id"]
    base = f"/v1/authorizations/{auth_id}"

    captured = await api.post(f"{base}/capture", json={"amount": 800}, headers=key("o1:capture"))
    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["captured_amount"]) == ("captured", 800)
    replay = await api.post(f"{base}/capture", json={"amount": 800}, headers=key("o1:capture"))
    assert replay.json() == captured.json()
    problem(await api.post(f"{base}/capture", json={"amount": 700}, headers=key("o1:capture")), 422)
    problem(await api.post(f"{base}/capture", headers=key("o1:capture-2")), 409)
    problem(await api.post(f"{base}/void", headers=key("o1:void")), 409)

    too_much = problem(
        await api.post(f"{base}/refund", json={"amount": 801}, headers=key("o1:refund-x")), 422
    )
    assert too_much["refundable"] == 800
    part = await api.post(f"{base}/refund", json={"amount": 300}, headers=key("o1:refund-1"))
    assert (part.json()["status"], part.json()["refunded_amount"]) == ("captured", 300)
    rest = await api.post(f"{base}/refund", headers=key("o1:refund-2"))
    assert (rest.json()["status"], rest.json()["refunded_amount"]) == ("refunded", 800)

    got = (await api.get(base)).json()
    assert got == rest.json()
    audit = (await api.get("/internal/audit/charges", headers=admin())).json()["items"]
    assert audit == [
        {
            "id": auth_id,
            "idempotency_key": "o1:authorize",
            "reference": "order-1",
            "amount": 1000,
            "currency": "EUR",
            "status": "refunded",
            "captured_amount": 800,
            "refunded_amount": 800,
        }
    ]


async def test_void_releases_the_hold(api: httpx.AsyncClient) -> None:
    auth_id = (await authorize(api, "o2:authorize")).json()["id"]
    voided = await api.post(f"/v1/authorizations/{auth_id}/void", headers=key("o2:void"))
    assert voided.json()["status"] == "voided"
    again = await api.post(f"/v1/authorizations/{auth_id}/void", headers=key("o2:void"))
    assert again.json() == voided.json()
    problem(await api.post(f"/v1/authorizations/{auth_id}/capture", headers=key("o2:cap")), 409)
    declined_id = (await authorize(api, "o3:authorize", token="tok_chargeDeclined")).json()["id"]
    problem(await api.post(f"/v1/authorizations/{declined_id}/void", headers=key("o3:void")), 409)


async def test_lookup_by_idempotency_key_and_reference(api: httpx.AsyncClient) -> None:
    created = (await authorize(api, "o4:authorize", reference="order-4")).json()
    found = await api.get("/v1/authorizations", params={"idempotency_key": "o4:authorize"})
    assert found.json() == {"items": [created]}
    by_reference = await api.get("/v1/authorizations", params={"reference": "order-4"})
    assert by_reference.json() == {"items": [created]}
    missing = await api.get("/v1/authorizations", params={"idempotency_key": "nope"})
    assert missing.json() == {"items": []}
    problem(await api.get("/v1/authorizations"), 422)
    problem(await api.get("/v1/authorizations/auth_nope"), 404)
    problem(await api.post("/v1/authorizations/auth_nope/capture", headers=key("x")), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (charge(amount=0), "amount"),
        (charge(amount=-5), "amount"),
        (charge(amount="100"), "amount"),
        (charge(amount=1.5), "amount"),
        (charge(amount=10**13), "amount"),
        (charge(currency="eur"), "currency"),
        (charge(reference=""), "reference"),
        (charge(reference="a\nb"), "reference"),
        (charge(reference="nul\x00"), "reference"),
        (charge(token="t" * 65), "token"),
        (charge(surprise=1), "surprise"),
        ({"amount": 100}, "currency"),
    ],
)
async def test_bad_bodies_are_422_and_charge_nothing(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    found = problem(await api.post("/v1/authorizations", json=body, headers=key("bad")), 422)
    assert any(error["field"] == field for error in found["errors"]), found
    # The key was never claimed: a good request may use it.
    assert (await authorize(api, "bad")).status_code == 201


async def test_headers_and_malformed_requests(api: httpx.AsyncClient) -> None:
    missing = problem(await api.post("/v1/authorizations", json=charge()), 428)
    assert missing["type"] == "/problems/idempotency-key-required"
    for bad_key in (b"", b"has space", b"k" * 256, "ключ".encode()):
        problem(
            await api.post(
                "/v1/authorizations", json=charge(), headers={"Idempotency-Key": bad_key}
            ),
            400,
        )
    problem(
        await api.post(
            "/v1/authorizations",
            content=b"{not json",
            headers={**key("m"), "content-type": "application/json"},
        ),
        400,
    )
    problem(
        await api.post("/v1/authorizations/x/capture", json={"amount": 0}, headers=key("c")), 422
    )
    problem(await api.delete("/v1/authorizations"), 405)
    problem(await api.get(f"/v1/authorizations/{'x' * 65}"), 422)


async def test_fault_knobs_are_admin_only(api: httpx.AsyncClient) -> None:
    problem(await api.get("/v1/_faults"), 401)
    problem(
        await api.put("/v1/_faults", json={"error_rate": 1}, headers=principal("customer")), 403
    )
    problem(await api.get("/internal/audit/charges", headers=principal("customer")), 403)
    # Authorization is checked before the body: an outsider learns nothing of the schema.
    problem(await api.put("/v1/_faults", json={"bogus": True}), 401)
    assert (await api.get("/v1/_faults", headers=admin())).json() == {
        "latency_ms": 0,
        "error_rate": 0.0,
        "timeout_after_charge_rate": 0.0,
        "timeout_seconds": 30.0,
    }
    for bad in ({"error_rate": 1.5}, {"latency_ms": -1}, {"timeout_seconds": 301}, {"x": 1}):
        problem(await api.put("/v1/_faults", json=bad, headers=admin()), 422)


async def test_error_rate_fails_before_doing_anything(api: httpx.AsyncClient) -> None:
    changed = await api.put("/v1/_faults", json={"error_rate": 1.0}, headers=admin())
    assert changed.json()["error_rate"] == 1.0
    for n in range(6):
        answer = await authorize(api, f"e{n}")
        assert answer.status_code in (500, 503)
        assert answer.headers["content-type"] == "application/problem+json"
    assert (await api.get("/v1/authorizations", params={"reference": "order-1"})).status_code in (
        500,
        503,
    )
    # The knobs themselves and the audit are never faulted.
    assert (await api.get("/internal/audit/charges", headers=admin())).json() == {"items": []}
    assert (await api.put("/v1/_faults", json={}, headers=admin())).json()["error_rate"] == 0.0
    assert (await authorize(api, "e0")).status_code == 201


async def test_knobs_from_settings_at_start_up(serving: Serving) -> None:
    async with serving(fault_error_rate=1.0, fault_latency_ms=5) as api:
        assert (await api.get("/v1/_faults", headers=admin())).json()["latency_ms"] == 5
        assert (await authorize(api, "s1")).status_code in (500, 503)


async def test_timeout_after_charge_commits_then_holds_the_answer(api: httpx.AsyncClient) -> None:
    knobs = {"timeout_after_charge_rate": 1.0, "timeout_seconds": 1.5}
    await api.put("/v1/_faults", json=knobs, headers=admin())
    pending = asyncio.create_task(authorize(api, "t1:authorize", reference="order-t"))
    found: list[Any] = []
    for _ in range(100):
        lookup = await api.get("/v1/authorizations", params={"idempotency_key": "t1:authorize"})
        found = lookup.json()["items"]
        if found:
            break
        await asyncio.sleep(0.02)
    assert found and found[0]["status"] == "authorized"
    assert not pending.done(), "the answer should still be held back"
    answer = await pending
    assert answer.json()["id"] == found[0]["id"]
    # Lookups are not held back; retries with the key give the same charge.
    await api.put("/v1/_faults", json={}, headers=admin())
    assert (await authorize(api, "t1:authorize", reference="order-t")).json()["id"] == found[0][
        "id"
    ]


async def test_a_restart_keeps_idempotency(serving: Serving) -> None:
    async with serving() as api:
        first = (await authorize(api, "r1:authorize")).json()
        auth_id = first["id"]
        captured = await api.post(f"/v1/authorizations/{auth_id}/capture", headers=key("r1:cap"))
    async with serving() as api:
        again = await authorize(api, "r1:authorize")
        assert again.json() == first
        assert again.headers["idempotent-replayed"] == "true"
        recaptured = await api.post(f"/v1/authorizations/{auth_id}/capture", headers=key("r1:cap"))
        assert recaptured.json() == captured.json()
        problem(await authorize(api, "r1:authorize", amount=5), 422)
        audit = (await api.get("/internal/audit/charges", headers=admin())).json()["items"]
        assert len(audit) == 1
