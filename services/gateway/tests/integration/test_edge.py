"""The gateway over real HTTP, in front of small real upstream services (aiohttp apps)."""

import base64
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from chassis import InternalTokenCodec
from chassis.discovery import InMemoryRegistry, ServiceInstance, utc_now
from gateway.bootstrap import build_app
from gateway.ratelimit import InProcessRateLimiter
from gateway.settings import GatewaySettings

SECRET = "gateway-test-secret"
KID = "key-1"


@dataclass
class Upstream:
    """A stand-in service that records what the gateway sent it."""

    name: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    server: TestServer | None = None

    async def handler(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append({"path": request.path_qs, "method": request.method,
                          "headers": request.headers.copy(), "body": body})  # fmt: skip
        if request.path == "/fail":
            return web.json_response({"boom": True}, status=503)
        return web.json_response({"service": self.name, "path": request.path_qs, "id": 7})


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def jwks_of(key: Ed25519PrivateKey, kid: str = KID) -> dict[str, Any]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {
        "keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA"}]
    }


def access_token(key: Any, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": "mercato-identity", "aud": "mercato", "sub": "user-1", "iat": now,
              "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex, "roles": ["customer"],
              "email": "u@example.com"}  # fmt: skip
    headers = {"kid": KID, "typ": "at+jwt"}
    algorithm = overrides.pop("_alg", "EdDSA")
    headers.update(overrides.pop("_headers", {}))
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


@dataclass
class Stack:
    url: str
    http: ClientSession
    catalog: Upstream
    identity: Upstream
    legacy: Upstream
    registry: InMemoryRegistry
    key: Ed25519PrivateKey


async def start_upstream(upstream: Upstream, jwks: dict[str, Any] | None = None) -> TestServer:
    app = web.Application()
    if jwks is not None:

        async def serve_jwks(_: web.Request) -> web.Response:
            return web.json_response(jwks)

        app.router.add_get("/.well-known/jwks.json", serve_jwks)
    app.router.add_route("*", "/{tail:.*}", upstream.handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    upstream.server = server
    return server


def instance(service: str, server: TestServer) -> ServiceInstance:
    now = utc_now()
    return ServiceInstance(service=service, instance_id=f"{service}-{server.port}",
                           host="127.0.0.1", port=server.port or 0, started_at=now,
                           last_heartbeat=now)  # fmt: skip


@pytest.fixture
async def stack(signing_key: Ed25519PrivateKey) -> AsyncIterator[Stack]:
    catalog, identity, legacy = Upstream("catalog"), Upstream("identity"), Upstream("legacy")
    servers = [
        await start_upstream(catalog),
        await start_upstream(identity, jwks_of(signing_key)),
        await start_upstream(legacy),
    ]
    try:
        async for built in _gateway(servers, catalog, identity, legacy, signing_key):
            yield built
    finally:
        for server in servers:
            await server.close()


async def _gateway(
    servers: list[TestServer],
    catalog: Upstream,
    identity: Upstream,
    legacy: Upstream,
    signing_key: Ed25519PrivateKey,
) -> AsyncIterator[Stack]:
    registry = InMemoryRegistry()
    await registry.register(instance("catalog", servers[0]))
    await registry.register(instance("identity", servers[1]))
    settings = GatewaySettings(
        internal_secret=SECRET,
        static_routes=f"/legacy=http://127.0.0.1:{servers[2].port}",
        cors_origins="https://shop.example",
        max_body_bytes=4096,
        request_timeout=3.0,
    )
    app = build_app(
        settings, registry=registry, configure_logs=False,
        limiter=InProcessRateLimiter(rate=1000, burst=1000),
    )  # fmt: skip
    gateway = TestServer(app, host="127.0.0.1")
    await gateway.start_server()
    try:
        async with ClientSession() as http:
            yield Stack(f"http://127.0.0.1:{gateway.port}", http, catalog, identity, legacy,
                        registry, signing_key)  # fmt: skip
    finally:
        await gateway.close()


async def get(stack: Stack, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
    async with stack.http.get(stack.url + path, **kwargs) as response:
        body = await response.read()
        return response.status, response.headers.copy(), orjson.loads(body) if body else None


async def test_routes_by_prefix_to_the_registered_service(stack: Stack) -> None:
    status, headers, body = await get(stack, "/api/v1/categories?x=1")
    assert status == 200
    assert body == {"service": "catalog", "path": "/api/v1/categories?x=1", "id": 7}
    status, _, body = await get(stack, "/api/v1/users/me")
    assert body["service"] == "identity"
    assert headers["x-request-id"] == stack.catalog.seen[0]["headers"]["x-request-id"]


async def test_unknown_routes_and_missing_services_are_problems(stack: Stack) -> None:
    status, headers, body = await get(stack, "/nowhere")
    assert status == 404 and headers["content-type"] == "application/problem+json"
    status, headers, body = await get(stack, "/api/v1/orders")
    assert status == 503
    assert body["detail"] == "orders is unavailable right now; try again shortly."
    assert headers["Retry-After"] == "1"


async def test_a_valid_token_becomes_a_trusted_internal_principal(stack: Stack) -> None:
    token = access_token(stack.key, roles=["customer", "admin"])
    status, _, _ = await get(
        stack, "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200
    forwarded = stack.identity.seen[-1]["headers"]
    principal = InternalTokenCodec(SECRET.encode()).verify(forwarded["X-Mercato-Principal"])
    assert principal.subject == "user-1"
    assert principal.roles == frozenset({"customer", "admin"})
    assert "Authorization" in forwarded  # services may still see it; they never need to


async def test_forged_identity_headers_from_clients_are_stripped(stack: Stack) -> None:
    forged = InternalTokenCodec(SECRET.encode()).issue(
        __import__("chassis").Principal("attacker", frozenset({"admin"}))
    )
    await get(stack, "/api/v1/products", headers={
        "X-Mercato-Principal": forged, "X-Forwarded-For": "10.9.9.9",
        "X-Mercato-Deadline-Ms": "999999",
    })  # fmt: skip
    seen = stack.catalog.seen[-1]["headers"]
    assert "X-Mercato-Principal" not in seen
    # The client's claimed address is kept, but the address the gateway saw is the last hop.
    assert seen["X-Forwarded-For"] == "10.9.9.9, 127.0.0.1"
    assert int(seen["X-Mercato-Deadline-Ms"]) <= 3000


def hs256_confusion(key: Ed25519PrivateKey) -> str:
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(
        orjson.dumps({"alg": "HS256", "typ": "at+jwt", "kid": KID})
    ).rstrip(b"=")
    now = int(time.time())
    payload = base64.urlsafe_b64encode(orjson.dumps({"iss": "mercato-identity", "aud": "mercato",
        "sub": "attacker", "iat": now, "exp": now + 300, "roles": ["admin"]})).rstrip(b"=")  # fmt: skip
    import hashlib
    import hmac

    signature = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    return (
        header + b"." + payload + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")
    ).decode()


def unsigned(key: Ed25519PrivateKey) -> str:
    del key
    now = int(time.time())
    return jwt.encode({"iss": "mercato-identity", "aud": "mercato", "sub": "attacker", "iat": now,
                       "exp": now + 300, "roles": ["admin"]}, None, algorithm="none",
                      headers={"kid": KID, "typ": "at+jwt"})  # fmt: skip


ATTACKS: dict[str, Callable[[Ed25519PrivateKey], str]] = {
    "alg none": unsigned,
    "HS256 with the public key as secret": hs256_confusion,
    "RS256 from another key": lambda k: access_token(
        generate_private_key(public_exponent=65537, key_size=2048), _alg="RS256"
    ),
    "signed by another Ed25519 key": lambda k: access_token(Ed25519PrivateKey.generate()),
    "expired": lambda k: access_token(k, exp=int(time.time()) - 60, iat=int(time.time()) - 400),
    "wrong audience": lambda k: access_token(k, aud="someone-else"),
    "wrong issuer": lambda k: access_token(k, iss="https://evil.example"),
    "not an access token (typ JWT)": lambda k: access_token(k, _headers={"typ": "JWT"}),
    "no exp": lambda k: access_token(k, exp=None),
    "kid injection": lambda k: access_token(k, _headers={"kid": "../../../../etc/passwd"}),
    "kid sql injection": lambda k: access_token(k, _headers={"kid": "x' OR '1'='1"}),
    "tampered payload": lambda k: (
        lambda t: (
            t.split(".")[0]
            + "."
            + base64.urlsafe_b64encode(orjson.dumps({"sub": "attacker", "roles": ["admin"]}))
            .rstrip(b"=")
            .decode()
            + "."
            + t.split(".")[2]
        )
    )(access_token(k)),
    "garbage": lambda k: "not.a.jwt",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_jwt_attacks_are_refused_and_never_reach_a_service(stack: Stack, attack: str) -> None:
    token = ATTACKS[attack](stack.key)
    status, headers, body = await get(
        stack, "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 401, (attack, body)
    assert headers["content-type"] == "application/problem+json"
    assert "WWW-Authenticate" in headers
    assert stack.identity.seen == []


async def test_an_unknown_kid_refetches_the_jwks_once(stack: Stack) -> None:
    token = access_token(stack.key)
    assert (await get(stack, "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}))[
        0
    ] == 200
    # A token from a rotated-in key that the cached JWKS does not know yet:
    new_key = Ed25519PrivateKey.generate()
    stack_jwks = jwks_of(new_key, kid="key-2")
    assert stack.identity.server is not None
    app = stack.identity.server.app
    del app  # the fake identity's JWKS is fixed; rotation itself is tested in identity
    status, _, body = await get(stack, "/api/v1/users/me", headers={
        "Authorization": f"Bearer {access_token(new_key, _headers={'kid': 'key-2'})}"})  # fmt: skip
    assert status == 401 and "unknown key" in body["detail"]
    assert stack_jwks["keys"][0]["kid"] == "key-2"


async def test_rate_limits_answer_429_with_retry_after() -> None:
    limiter = InProcessRateLimiter(rate=1.0, burst=2, clock=lambda: 100.0)
    assert await limiter.acquire("ip:a") == 0
    assert await limiter.acquire("ip:a") == 0
    wait = await limiter.acquire("ip:a")
    assert 0.9 < wait <= 1.0
    assert await limiter.acquire("ip:b") == 0


async def test_the_gateway_sheds_with_429_over_the_limit(signing_key: Ed25519PrivateKey) -> None:
    catalog = Upstream("catalog")
    server = await start_upstream(catalog)
    registry = InMemoryRegistry()
    await registry.register(instance("catalog", server))
    app = build_app(GatewaySettings(internal_secret=SECRET), registry=registry, configure_logs=False,
                    limiter=InProcessRateLimiter(rate=0.5, burst=3))  # fmt: skip
    gateway = TestServer(app, host="127.0.0.1")
    await gateway.start_server()
    try:
        async with ClientSession() as http:
            statuses = []
            for _ in range(5):
                async with http.get(f"http://127.0.0.1:{gateway.port}/api/v1/products") as r:
                    statuses.append(r.status)
                    if r.status == 429:
                        assert int(r.headers["Retry-After"]) >= 1
                        assert (await r.json())["type"] == "/problems/rate-limited"
        assert statuses == [200, 200, 200, 429, 429]
        assert len(catalog.seen) == 3
    finally:
        await gateway.close()
        await server.close()


async def test_static_upstream_routes_reach_a_system_outside_the_registry(stack: Stack) -> None:
    status, _, body = await get(stack, "/legacy/reports?q=1")
    assert status == 200 and body["service"] == "legacy"
    assert stack.legacy.seen[0]["path"] == "/legacy/reports?q=1"


async def test_product_composition_falls_back_when_inventory_is_absent(stack: Stack) -> None:
    status, _, body = await get(stack, "/api/v1/products/abc-123")
    assert status == 200
    assert body["service"] == "catalog" and body["availability"] is None


async def test_oversized_bodies_are_413_before_reaching_a_service(stack: Stack) -> None:
    async with stack.http.post(stack.url + "/api/v1/products", data=b"x" * 10_000) as response:
        assert response.status == 413
        assert response.headers["content-type"] == "application/problem+json"
    assert stack.catalog.seen == []


async def test_cors_preflight_and_allowed_origin(stack: Stack) -> None:
    async with stack.http.options(stack.url + "/api/v1/products", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}) as response:  # fmt: skip
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    async with stack.http.get(
        stack.url + "/api/v1/products", headers={"Origin": "https://evil.example"}
    ) as r:
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_merged_openapi_lists_each_services_public_paths(stack: Stack) -> None:
    # The fake upstreams answer /openapi.json with their echo document (no paths): the
    # merge must still produce a valid document and not fail.
    status, _, body = await get(stack, "/api/v1/openapi.json")
    assert status == 200
    assert body["openapi"] == "3.1.0"
    assert "bearer" in body["components"]["securitySchemes"]


@pytest.mark.parametrize(
    "path",
    [
        "/nowhere%0A",  # once slipped past the catch-all route to aiohttp's text/plain 404
        "/api/v1/products/a%0Ab",  # forwarded, the line break was dropped: another path
        "/api/v1/products/..%2f..%2f..%2finternal%2faudit%2fstock",
        "/api/v1/products/..%2F..%2F..%2Fmetrics",
        "/api/v1/users/%2e%2e%2f%2e%2e%2f%2e%2e%2fopenapi.json",
        "/api/v1/products/.%0A./.%0A./.%0A./internal/audit/stock",
    ],
)
async def test_paths_that_would_change_upstream_are_404_and_reach_no_service(
    stack: Stack, path: str
) -> None:
    # Decoded, `..%2f` is `../`, and dot segments are resolved on the way upstream: routed as
    # a product, the request used to reach the service's /internal, /metrics or /openapi.json.
    token = access_token(stack.key, roles=["customer", "admin"])
    status, headers, body = await get(stack, path, headers={"Authorization": f"Bearer {token}"})
    assert status == 404, body
    assert headers["content-type"] == "application/problem+json"
    assert stack.catalog.seen == [] and stack.identity.seen == []


@pytest.mark.parametrize(
    "path",
    ["/api/v1/products/a%3Fb/x", "/api/v1/products/a%23b/x", "/api/v1/products/a%2Fb",
     "/api/v1/products/%25", "/api/v1/products/a%20b?q=1"],
)  # fmt: skip
async def test_the_service_gets_the_path_as_the_client_encoded_it(stack: Stack, path: str) -> None:
    # Forwarded decoded, `a%3Fb/x` became `a` with the query `b/x`: another operation.
    status, _, _ = await get(stack, path)
    assert status == 200
    assert stack.catalog.seen[-1]["path"] == path
