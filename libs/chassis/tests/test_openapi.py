"""The OpenAPI document `create_app` serves says what the app really answers: errors are
problem+json `Problem`s, guarded routes need the internal principal header."""

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import jsonschema_rs
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
    require_role,
)
from chassis.errors import NotFoundError

SECRET = b"openapi-test-internal-secret"


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "demo"


class Gadget(BaseModel):
    name: str


def build() -> FastAPI:
    router = api_router(prefix="/api/v1")

    @router.get("/gadgets/{gadget_id}")
    async def get_gadget(gadget_id: int) -> Gadget:
        raise NotFoundError(f"no gadget {gadget_id}")

    @router.post("/gadgets", status_code=201, dependencies=[Depends(require_role("admin"))])
    async def create_gadget(body: Gadget) -> Gadget:
        return body

    @router.get("/me", responses={409: {"description": "locked"}})
    async def me(principal: Principal = Depends(require_role())) -> dict[str, str]:
        return {"subject": principal.subject}

    settings = DemoSettings(internal_secret=SECRET.decode(), max_body_bytes=2048)
    return create_app(settings, [router], configure_logs=False)


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    built = build()
    async with LifespanManager(built, startup_timeout=60, shutdown_timeout=60):
        yield built


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
        yield http


def principal(*roles: str) -> dict[str, str]:
    token = InternalTokenCodec(SECRET).issue(Principal("user-1", frozenset(roles)))
    return {"x-mercato-principal": token}


def documented(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    """The schema `document` gives for `status` (or `4XX`) answers of `method path`."""
    responses = document["paths"][path][method]["responses"]
    response = responses.get(str(status)) or responses[f"{str(status)[0]}XX"]
    (media_type,) = response["content"]
    assert media_type == "application/problem+json"
    ref = response["content"][media_type]["schema"]["$ref"]
    schema: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


async def test_every_error_is_documented_as_a_problem(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    for item in document["paths"].values():
        for operation in item.values():
            assert "4XX" in operation["responses"]
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"]
    me = document["paths"]["/api/v1/me"]["get"]["responses"]
    assert me["409"]["description"] == "locked"  # what the route says is kept


async def test_guarded_routes_document_the_principal_header(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["internalPrincipal"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header",
                                                              "x-mercato-principal")  # fmt: skip
    create = document["paths"]["/api/v1/gadgets"]["post"]
    assert create["security"] == [{"internalPrincipal": []}]
    assert {"401", "403"} <= set(create["responses"])
    me = document["paths"]["/api/v1/me"]["get"]
    assert me["security"] == [{"internalPrincipal": []}]
    assert "401" in me["responses"] and "403" not in me["responses"]
    assert "security" not in document["paths"]["/api/v1/gadgets/{gadget_id}"]["get"]


@pytest.mark.parametrize(
    ("method", "path", "status", "kwargs"),
    [
        ("get", "/api/v1/gadgets/{gadget_id}", 404, {"url": "/api/v1/gadgets/7"}),
        ("get", "/api/v1/gadgets/{gadget_id}", 422, {"url": "/api/v1/gadgets/x"}),
        ("post", "/api/v1/gadgets", 401, {"url": "/api/v1/gadgets", "json": {"name": "a"}}),
        ("post", "/api/v1/gadgets", 403, {"url": "/api/v1/gadgets", "json": {"name": "a"},
                                          "roles": ("customer",)}),
        ("post", "/api/v1/gadgets", 422, {"url": "/api/v1/gadgets", "json": {"name": 1},
                                          "roles": ("admin",)}),
        ("post", "/api/v1/gadgets", 400, {"url": "/api/v1/gadgets", "content": b"{",
                                          "roles": ("admin",),
                                          "headers": {"content-type": "application/json"}}),
        ("post", "/api/v1/gadgets", 413, {"url": "/api/v1/gadgets", "content": b"x" * 4096,
                                          "roles": ("admin",)}),
    ],
)  # fmt: skip
async def test_real_errors_match_their_documented_schema(
    client: httpx.AsyncClient, method: str, path: str, status: int, kwargs: dict[str, Any]
) -> None:
    document = (await client.get("/openapi.json")).json()
    kwargs = dict(kwargs)
    roles = kwargs.pop("roles", None)
    if roles is not None:  # signed now: a token made at collection time may have expired
        kwargs["headers"] = {**kwargs.get("headers", {}), **principal(*roles)}
    response = await client.request(method.upper(), **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    validator = jsonschema_rs.validator_for(documented(document, path, method, status))
    errors = [error.message for error in validator.iter_errors(response.json())]
    assert errors == []


async def test_the_document_is_rewritten_once_and_served_as_cached(app: FastAPI) -> None:
    first = app.openapi()
    assert app.openapi() is first
    assert first["paths"]["/api/v1/gadgets"]["post"]["security"] == [{"internalPrincipal": []}]
