"""Identity over HTTP, on SQLite and on PostgreSQL: the flows and every kind of bad input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager

from chassis import PRINCIPAL_HEADER, InternalTokenCodec, Principal
from identity.adapters.passwords import Argon2PasswordHasher
from identity.bootstrap import build_app, rotate_keys
from identity.settings import IdentitySettings

PASSWORD = "correct horse battery"
# Every password a test sends that is long enough to search for in responses.
SECRETS = (PASSWORD, "wrong horse battery", "test-admin-password-2026")


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: IdentitySettings
    responses: list[httpx.Response] = field(default_factory=list)

    def principal(self, subject: str, *roles: str) -> dict[str, str]:
        codec = InternalTokenCodec(self.settings.internal_secret.get_secret_value().encode())
        return {PRINCIPAL_HEADER: codec.issue(Principal(subject, frozenset(roles)))}

    async def register(self, email: str = "alice@example.com", **overrides: Any) -> httpx.Response:
        body = {"email": email, "password": PASSWORD, "name": "Alice", **overrides}
        return await self.client.post("/api/v1/auth/register", json=body)

    async def sign_in(
        self, email: str = "alice@example.com", password: str = PASSWORD, **headers: str
    ) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/token",
            json={"email": email, "password": password},
            headers={name.replace("_", "-"): value for name, value in headers.items()},
        )

    async def refresh(self, token: str) -> httpx.Response:
        return await self.client.post("/api/v1/auth/refresh", json={"refresh_token": token})


@asynccontextmanager
async def serving(settings: IdentitySettings, hasher: Argon2PasswordHasher) -> AsyncIterator[Api]:
    """The app with its lifespan, and a client that checks no response ever leaks a secret."""
    app = build_app(settings, hasher=hasher)
    seen: list[httpx.Response] = []

    async def record(response: httpx.Response) -> None:
        await response.aread()
        seen.append(response)

    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://identity",
            event_hooks={"response": [record]},
        ) as client,
    ):
        yield Api(client, settings, seen)
    for response in seen:
        text = response.text + json.dumps(dict(response.headers))
        for secret in SECRETS:
            assert secret not in text, f"a password leaked in {response.request.url}"
        assert "$argon2" not in text


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def api(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_settings: Callable[..., IdentitySettings],
    hasher: Argon2PasswordHasher,
) -> AsyncIterator[Api]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/identity.db"
    else:
        url = request.getfixturevalue("postgres_url")
    async with serving(make_settings(database_url=url), hasher) as served:
        yield served


@pytest.fixture
async def edge(
    tmp_path: Path, make_settings: Callable[..., IdentitySettings], hasher: Argon2PasswordHasher
) -> AsyncIterator[Api]:
    """Identity on SQLite only: for input refused at the edge, before any storage is touched
    (so the database cannot matter, and PostgreSQL set-ups would only slow the suite)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/identity.db"
    async with serving(make_settings(database_url=url), hasher) as served:
        yield served


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


async def jwks(api: Api) -> dict[str, Any]:
    response = await api.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def verify(api: Api, token: str) -> dict[str, Any]:
    """Verify as the gateway will: pyjwt, EdDSA only, issuer, audience, `typ`, by `kid`."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "EdDSA"
    key = jwt.PyJWKSet.from_dict(await jwks(api))[header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience="mercato",
        issuer="mercato-identity",
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    return claims


# -- the flows ------------------------------------------------------------------------------


async def test_register_sign_in_me_refresh_reuse_and_logout(api: Api) -> None:
    registered = await api.register(email="  Alice@Example.COM ")
    assert registered.status_code == 201, registered.text
    user = registered.json()
    assert set(user) == {"id", "email", "name"}
    assert (user["email"], user["name"]) == ("Alice@example.com", "Alice")

    signed_in = await api.sign_in(email="alice@EXAMPLE.com")
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.headers["cache-control"] == "no-store"
    pair = signed_in.json()
    assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert (pair["token_type"], pair["expires_in"]) == ("Bearer", 300)
    assert len(pair["refresh_token"]) >= 43

    claims = await verify(api, pair["access_token"])
    assert claims["sub"] == user["id"]
    assert claims["roles"] == ["customer"]
    assert claims["email"] == "Alice@example.com"
    assert claims["exp"] - claims["iat"] == 300

    me = await api.client.get("/api/v1/users/me", headers=api.principal(claims["sub"], "customer"))
    assert me.status_code == 200, me.text
    profile = me.json()
    assert set(profile) == {"id", "email", "name", "roles", "created_at"}
    assert profile["id"] == user["id"]
    assert profile["roles"] == ["customer"]
    assert profile["created_at"].endswith("Z")

    refreshed = await api.refresh(pair["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.headers["cache-control"] == "no-store"
    second = refreshed.json()
    assert second["refresh_token"] != pair["refresh_token"]
    assert (await verify(api, second["access_token"]))["sub"] == user["id"]

    # the first refresh token was used: replaying it kills the family, the newest token too
    reuse = problem(await api.refresh(pair["refresh_token"]), 401)
    assert reuse["type"] == "/problems/invalid-refresh-token"
    problem(await api.refresh(second["refresh_token"]), 401)

    # logout revokes another session's family; again is fine, and so is nonsense
    third = (await api.sign_in()).json()
    for _ in range(2):
        out = await api.client.post(
            "/api/v1/auth/logout", json={"refresh_token": third["refresh_token"]}
        )
        assert out.status_code == 204
        assert out.content == b""
    unknown = await api.client.post("/api/v1/auth/logout", json={"refresh_token": "x" * 43})
    assert unknown.status_code == 204
    problem(await api.refresh(third["refresh_token"]), 401)


async def test_users_me_needs_a_principal_the_gateway_signed(api: Api) -> None:
    user = (await api.register()).json()
    problem(await api.client.get("/api/v1/users/me"), 401)
    forged = {PRINCIPAL_HEADER: "eyJzdWIiOiJ4In0.bm90LWEtc2lnbmF0dXJl"}
    problem(await api.client.get("/api/v1/users/me", headers=forged), 401)
    # a signed-in user always sees their own profile, never another's
    gone = await api.client.get("/api/v1/users/me", headers=api.principal("ghost", "customer"))
    problem(gone, 404)
    mine = await api.client.get("/api/v1/users/me", headers=api.principal(user["id"], "customer"))
    assert mine.json()["id"] == user["id"]
    # the public JWT is not accepted here: the gateway verifies it and forwards a principal
    pair = (await api.sign_in()).json()
    bearer = {"authorization": f"Bearer {pair['access_token']}"}
    problem(await api.client.get("/api/v1/users/me", headers=bearer), 401)


async def test_the_first_admin_comes_from_settings_idempotently(api: Api) -> None:
    signed_in = await api.sign_in(email="ROOT@mercato.local", password="test-admin-password-2026")
    assert signed_in.status_code == 200, signed_in.text
    claims = await verify(api, signed_in.json()["access_token"])
    assert claims["roles"] == ["admin", "customer"]

    # a second instance on the same database (a restart, a replica) changes nothing
    again = build_app(api.settings, hasher=Argon2PasswordHasher(time_cost=1, memory_cost=8))
    async with LifespanManager(again, startup_timeout=60, shutdown_timeout=60):
        pass
    signed_in = await api.sign_in(email="root@mercato.local", password="test-admin-password-2026")
    assert (await verify(api, signed_in.json()["access_token"]))["sub"] == claims["sub"]


async def test_a_forced_key_rotation_keeps_old_tokens_verifying(api: Api) -> None:
    await api.register()
    before = (await api.sign_in()).json()["access_token"]
    old_kid = jwt.get_unverified_header(before)["kid"]

    new_kid = await rotate_keys(api.settings)

    after = (await api.sign_in()).json()["access_token"]
    assert jwt.get_unverified_header(after)["kid"] == new_kid != old_kid
    published = await jwks(api)
    assert [k["kid"] for k in published["keys"]] == [new_kid, old_kid]
    for key in published["keys"]:
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )
        assert "d" not in key  # the private part never leaves
    await verify(api, before)
    await verify(api, after)
    mirror = await api.client.get("/api/v1/auth/jwks.json")
    assert mirror.json() == published
    assert "max-age" in mirror.headers["cache-control"]


# -- credentials and throttling -------------------------------------------------------------


@pytest.mark.parametrize(
    "again", ["alice@example.com", "ALICE@EXAMPLE.COM", "  alice@example.com\t"]
)
async def test_a_duplicate_email_is_one_409_whatever_its_case(api: Api, again: str) -> None:
    assert (await api.register()).status_code == 201
    body = problem(await api.register(email=again, name="Other"), 409)
    assert body["type"] == "/problems/email-taken"
    assert body["title"] == "Email address taken"


async def test_unknown_email_and_wrong_password_are_the_same_401(api: Api) -> None:
    await api.register()
    wrong = problem(await api.sign_in(password="wrong horse battery"), 401)
    unknown = problem(await api.sign_in(email="nobody@example.com"), 401)
    nonsense = problem(await api.sign_in(email="not an email"), 401)
    for body in (wrong, unknown, nonsense):
        del body["request_id"], body["trace_id"]
    assert wrong == unknown == nonsense
    assert wrong["type"] == "/problems/invalid-credentials"


async def test_an_account_is_throttled_with_429_and_retry_after(api: Api) -> None:
    await api.register()
    for _ in range(5):
        problem(await api.sign_in(password="wrong horse battery"), 401)
    throttled = await api.sign_in()  # even the right password waits
    body = problem(throttled, 429)
    assert body["type"] == "/problems/too-many-attempts"
    assert 0 < int(throttled.headers["retry-after"]) <= 900
    assert body["retry_after"] == int(throttled.headers["retry-after"])
    problem(await api.sign_in(email="ALICE@example.com"), 429)
    # another account is not affected
    await api.register(email="bob@example.com")
    assert (await api.sign_in(email="bob@example.com")).status_code == 200


async def test_one_client_address_is_throttled_by_the_last_forwarded_hop(api: Api) -> None:
    await api.register()
    for n in range(20):
        # the client forges the first entry; the gateway appended the last
        forwarded = f"198.51.100.{n}, 203.0.113.9"
        response = await api.sign_in(email=f"user{n}@example.com", x_forwarded_for=forwarded)
        problem(response, 401)
    problem(await api.sign_in(x_forwarded_for="10.0.0.1, 203.0.113.9"), 429)
    allowed = await api.sign_in(x_forwarded_for="203.0.113.9, 203.0.113.10")
    assert allowed.status_code == 200, allowed.text


# -- bad input ------------------------------------------------------------------------------


def body(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {"email": "alice@example.com", "password": PASSWORD, "name": "A"}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not ...}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (body(roles=["admin"]), "roles"),
        (body(id="chosen-by-client"), "id"),
        (body(created_at="2020-01-01T00:00:00Z"), "created_at"),
        (body(password_hash="$argon2id$..."), "password_hash"),
        (body(email=...), "email"),
        (body(password=...), "password"),
        (body(name=...), "name"),
        (body(email=42), "email"),
        (body(email=None), "email"),
        (body(email=["alice@example.com"]), "email"),
        (body(password=123456789012345), "password"),
        (body(password=True), "password"),
        (body(name={"first": "A"}), "name"),
        (body(email=""), "email"),
        (body(email="not-an-email"), "email"),
        (body(email="a@b"), "email"),
        (body(email="admin@mercato.local"), "email"),
        (body(email="Alice <alice@example.com>"), "email"),
        (body(email="alice@example.com\x00"), "email"),
        (body(email="al\ud800ice@example.com"), "email"),
        (body(email="a" * 400 + "@example.com"), "email"),
        (body(email="alice@" + "x" * 300 + ".com"), "email"),
        (body(password="short"), "password"),
        (body(password="x" * 129 + "yzabc"), "password"),
        (body(password="p" * 5000), "password"),
        (body(password="password1234"), "password"),
        (body(password="alice@example.com"), "password"),
        (body(password="lone \ud800 surrogate pass"), "password"),
        (body(name=""), "name"),
        (body(name="   "), "name"),
        (body(name="x" * 101), "name"),
        (body(name="line\nbreak"), "name"),
        (body(name="nul\x00byte"), "name"),
        (body(name="c1 \x85 control"), "name"),
        (body(name="bidi \u202egnp.exe"), "name"),
        (body(name="zero\u200bwidth"), "name"),
        (body(name="lone \ud800"), "name"),
    ],
)
async def test_bad_registrations_are_422_naming_the_field(
    edge: Api, payload: dict[str, object], field: str
) -> None:
    # json.dumps escapes a lone surrogate as \\ud800, as a hostile client would send it
    raw = json.dumps(payload).encode()
    response = await edge.client.post(
        "/api/v1/auth/register", content=raw, headers={"content-type": "application/json"}
    )
    details = problem(response, 422)
    assert field in {e["field"] for e in details["errors"]}
    if isinstance(payload.get("password"), str) and len(str(payload["password"])) >= 5:
        assert str(payload["password"]) not in response.text
    assert (await edge.sign_in(email="alice@example.com")).status_code == 401


@pytest.mark.parametrize(
    ("email", "name", "shown_name"),
    [
        ("zoë@example.com", "Zoë O'Brien-Łukasz", "Zoë O'Brien-Łukasz"),
        ("李@例え.jp", "李小龍", "李小龍"),
        ("jose\u0301@example.com", "Jose\u0301", "José"),
        ("family@example.com", "👨\u200d👩\u200d👧 family", "👨\u200d👩\u200d👧 family"),
        ("rtl@example.com", "مرحبا بالعالم", "مرحبا بالعالم"),
        ("quote@example.com", "Robert'); DROP TABLE users;--", "Robert'); DROP TABLE users;--"),
        ("space@example.com", "\u3000 padded \u3000", "padded"),
    ],
)
async def test_unicode_names_and_addresses_round_trip(
    api: Api, email: str, name: str, shown_name: str
) -> None:
    registered = await api.register(email=email, name=name)
    assert registered.status_code == 201, registered.text
    user = registered.json()
    assert user["name"] == shown_name
    signed_in = await api.sign_in(email=email.upper())
    assert signed_in.status_code == 200, signed_in.text
    me = await api.client.get("/api/v1/users/me", headers=api.principal(user["id"], "customer"))
    assert me.json()["name"] == shown_name
    assert me.json()["email"] == user["email"]


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/token", "/api/v1/auth/refresh", "/api/v1/auth/logout"]
)
@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"email": "alice@example.com"},
        {"email": 1, "password": 2},
        {"refresh_token": None},
        {"refresh_token": "x" * 10_000},
        {"refresh_token": "not base64url!"},
        {"refresh_token": "\ud800"},
        [],
        "string",
        None,
    ],
)
async def test_bad_token_bodies_are_422(edge: Api, path: str, payload: object) -> None:
    response = await edge.client.post(
        path, content=json.dumps(payload), headers={"content-type": "application/json"}
    )
    problem(response, 422)


async def test_extra_fields_in_sign_in_bodies_are_refused(edge: Api) -> None:
    await edge.register()
    extra = {"email": "alice@example.com", "password": PASSWORD, "grant_type": "password"}
    problem(await edge.client.post("/api/v1/auth/token", json=extra), 422)
    refresh = {"refresh_token": "x" * 43, "user_id": "someone"}
    problem(await edge.client.post("/api/v1/auth/refresh", json=refresh), 422)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/auth/register",
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
    ],
)
@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", "application/json"),
        (b"not json", "application/json"),
        (b'{"email": "a@example.com", ', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b'{"email": "\\ud800"', "application/json"),
        (b"email=a%40example.com&password=x", "application/x-www-form-urlencoded"),
        (b'{"refresh_token": "abc"}', "text/plain"),
    ],
)
async def test_non_json_bodies_are_4xx_problems(
    edge: Api, path: str, content: bytes, content_type: str
) -> None:
    response = await edge.client.post(path, content=content, headers={"content-type": content_type})
    assert response.status_code in (400, 415, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_ten_megabyte_body_is_413(edge: Api) -> None:
    huge = b'{"email": "' + b"a" * 10_000_000 + b'"}'
    response = await edge.client.post(
        "/api/v1/auth/register", content=huge, headers={"content-type": "application/json"}
    )
    problem(response, 413)


async def test_the_openapi_document_lists_the_public_paths(edge: Api) -> None:
    document = (await edge.client.get("/openapi.json")).json()
    assert set(document["paths"]) == {
        "/api/v1/auth/register",
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/jwks.json",
        "/api/v1/users/me",
        "/.well-known/jwks.json",
    }
    register = document["components"]["schemas"]["RegisterIn"]
    assert register["additionalProperties"] is False
    assert register["properties"]["password"]["writeOnly"] is True


async def test_wrong_methods_and_paths_are_problems(edge: Api) -> None:
    problem(await edge.client.get("/api/v1/auth/token"), 405)
    problem(await edge.client.delete("/.well-known/jwks.json"), 405)
    problem(await edge.client.get("/api/v1/users/someone-else"), 404)
