"""Mercato's checkout as one process over one SQLite database: the monolith baseline.

The same public paths as the gateway for the checkout journey, the same domain rules
(argon2id passwords and EdDSA access tokens like identity; stock reserved, then committed,
like inventory; the psp over HTTP, authorize then capture, with idempotency keys, like
payments; orders PENDING then CONFIRMED or REJECTED, confirmed in the background after the
202, like the orders saga), written compactly in one module. It imports no service: it is
what the microservices are measured against (bench/tax.py) and what docs/migration.md
strangles. Differences from the services are listed in README.md next to this file.

Run: `python bench/monolith/shop.py` (settings: `MONOLITH_*`, see `Settings`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import random
import re
import secrets
import sys
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import aiohttp
import jwt
import orjson
import uvicorn
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from email_validator import EmailNotValidError, validate_email
from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chassis import InternalTokenCodec
from chassis.errors import MercatoError

log = logging.getLogger("monolith")

PROBLEM = "application/problem+json"
MAX_LINES = 50
MAX_QUANTITY = 100
MAX_TOTAL = 10**12
AUTHORIZE_DEADLINE = 30.0  # seconds the psp may stay silent before an order is given up


# -- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """From `MONOLITH_*` variables. `catalog_url` set: products are priced at the catalog
    service (strangler step 1); `trust_gateway` set: the gateway's internal principal token is
    accepted as well as the monolith's own access tokens (step 2, identity moved out)."""

    host: str = "127.0.0.1"
    port: int = 8090
    data_dir: Path = Path(".monolith")
    psp_url: str = "http://127.0.0.1:8007"
    catalog_url: str = ""
    seed_file: str = ""
    initial_stock: int = 100
    admin_email: str = "admin@mercato.local"
    admin_password: str = "mercato-dev-admin-password"  # noqa: S105  (dev only)
    issuer: str = "mercato-identity"
    audience: str = "mercato"
    access_token_ttl: int = 300
    max_pending: int = 20
    trust_gateway: bool = False
    internal_secret: str = "dev-insecure-secret"  # noqa: S105  (dev only)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            host=env.get("MONOLITH_HOST", cls.host),
            port=int(env.get("MONOLITH_PORT", cls.port)),
            data_dir=Path(env.get("MONOLITH_DATA_DIR", str(cls.data_dir))),
            psp_url=env.get("MONOLITH_PSP_URL", cls.psp_url).rstrip("/"),
            catalog_url=env.get("MONOLITH_CATALOG_URL", "").rstrip("/"),
            seed_file=env.get("MONOLITH_SEED_FILE", ""),
            initial_stock=int(env.get("MONOLITH_INITIAL_STOCK", cls.initial_stock)),
            admin_email=env.get("MONOLITH_ADMIN_EMAIL", cls.admin_email),
            admin_password=env.get("MONOLITH_ADMIN_PASSWORD", cls.admin_password),
            access_token_ttl=int(env.get("MONOLITH_ACCESS_TOKEN_TTL", cls.access_token_ttl)),
            max_pending=int(env.get("MONOLITH_MAX_PENDING", cls.max_pending)),
            trust_gateway=env.get("MONOLITH_TRUST_GATEWAY", "") in ("1", "true", "yes"),
            internal_secret=env.get("MERCATO_INTERNAL_SECRET", cls.internal_secret),
        )


# -- errors, as problem+json ----------------------------------------------------------------


class Problem(Exception):
    def __init__(self, status: int, detail: str, *, slug: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.slug, self.extra = status, detail, slug, extra


def problem_response(
    problem: Problem, instance: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "type": f"/problems/{problem.slug}",
        "title": problem.slug.replace("-", " ").capitalize(),
        "status": problem.status,
        "detail": problem.detail,
        "instance": instance,
        **problem.extra,
    }
    return Response(
        orjson.dumps(body), status_code=problem.status, media_type=PROBLEM, headers=headers
    )


def invalid(error: ValidationError) -> Problem:
    errors = [
        {"location": "body", "field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
        for e in error.errors(include_url=False, include_input=False)
    ]
    return Problem(422, "the request body is not valid", slug="validation-error", errors=errors)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise Problem(
            422, "the cursor is malformed; use next_cursor as given", slug="validation-error"
        ) from None
    if not isinstance(values, list) or len(values) != 2:
        raise Problem(
            422, "the cursor is malformed; use next_cursor as given", slug="validation-error"
        )
    return values


# -- the database ---------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    password_hash TEXT NOT NULL, roles TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id),
    issued_at TEXT NOT NULL, expires_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signing_keys (kid TEXT PRIMARY KEY, private_pem TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL, description TEXT NOT NULL,
    category TEXT NOT NULL, price_amount INTEGER NOT NULL, currency TEXT NOT NULL,
    image_url TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS products_by_name ON products(name, id);
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT PRIMARY KEY, available INTEGER NOT NULL CHECK (available >= 0),
    reserved INTEGER NOT NULL CHECK (reserved >= 0), committed INTEGER NOT NULL CHECK (committed >= 0),
    updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS movements (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sku TEXT NOT NULL, kind TEXT NOT NULL,
    quantity INTEGER NOT NULL, order_id TEXT, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
    total_amount INTEGER NOT NULL, currency TEXT NOT NULL, payment_token TEXT,
    step TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders(user_id, status);
CREATE INDEX IF NOT EXISTS orders_by_step ON orders(step);
CREATE TABLE IF NOT EXISTS order_lines (
    order_id TEXT NOT NULL REFERENCES orders(id), position INTEGER NOT NULL,
    product_id TEXT NOT NULL, sku TEXT NOT NULL, name TEXT NOT NULL, quantity INTEGER NOT NULL,
    unit_amount INTEGER NOT NULL, currency TEXT NOT NULL, PRIMARY KEY (order_id, position));
CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, status INTEGER NOT NULL,
    body BLOB NOT NULL, order_id TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (user_id, key));
CREATE TABLE IF NOT EXISTS reservations (
    order_id TEXT PRIMARY KEY REFERENCES orders(id), status TEXT NOT NULL, reason TEXT,
    expires_at TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY, order_id TEXT NOT NULL UNIQUE REFERENCES orders(id), status TEXT NOT NULL,
    amount INTEGER NOT NULL, currency TEXT NOT NULL, psp_id TEXT, authorized INTEGER NOT NULL,
    captured INTEGER NOT NULL, voided INTEGER NOT NULL, decline_reason TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS payment_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT, payment_id TEXT NOT NULL REFERENCES payments(id),
    kind TEXT NOT NULL, amount INTEGER NOT NULL, psp_reference TEXT, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
    body TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS notifications_by_user ON notifications(user_id, created_at);
"""


class Store:
    """One SQLite file in WAL mode. Writers share one connection and start with `BEGIN
    IMMEDIATE` (SQLite has one writer: they queue in the pool instead of its busy handler);
    readers have a pool of their own. The same set-up as the services' chassis."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
        self.readers = self._engine(create_async_engine(url, connect_args={"timeout": 30}), "BEGIN")
        self.writer = self._engine(
            create_async_engine(
                url, pool_size=1, max_overflow=0, pool_timeout=60, connect_args={"timeout": 30}
            ),
            "BEGIN IMMEDIATE",
        )

    @staticmethod
    def _engine(engine: AsyncEngine, begin: str) -> AsyncEngine:
        @event.listens_for(engine.sync_engine, "connect")
        def on_connect(connection: Any, _: Any) -> None:
            connection.isolation_level = None  # BEGIN is ours to emit
            cursor = connection.cursor()
            for pragma in (
                "busy_timeout=30000",
                "journal_mode=WAL",
                "synchronous=NORMAL",
                "foreign_keys=ON",
            ):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

        return engine

    async def create_schema(self) -> None:
        async with self.writer.begin() as tx:
            for statement in filter(str.strip, SCHEMA.split(";")):
                await tx.execute(text(statement))

    def read(self) -> Any:
        return self.readers.begin()

    def write(self) -> Any:
        return self.writer.begin()

    async def close(self) -> None:
        await self.readers.dispose()
        await self.writer.dispose()


async def rows(tx: AsyncConnection, sql: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in (await tx.execute(text(sql), params)).mappings()]


async def one(tx: AsyncConnection, sql: str, **params: Any) -> dict[str, Any] | None:
    found = (await tx.execute(text(sql), params)).mappings().first()
    return dict(found) if found is not None else None


# -- identity: passwords and tokens ---------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    email: str | None = None


# identity's argon2id parameters (OWASP's minimum): 19 MiB, 2 iterations, 1 lane.
HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1, type=Type.ID)


def check_password(password: str, email: str) -> str:
    """identity's policy (length, variety, not the address); the NFKC form to hash."""
    value = unicodedata.normalize("NFKC", password)
    if not 12 <= len(value) <= 128:
        raise Problem(422, "the password must be 12 to 128 characters long", slug="weak-password")
    if len(set(value)) < 5:
        raise Problem(
            422, "the password must use at least 5 different characters", slug="weak-password"
        )
    if value.casefold() in (email, email.partition("@")[0]):
        raise Problem(422, "the password must not be your email address", slug="weak-password")
    return value


def normalize_email(raw: str, *, reserved_ok: bool = False) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        local, _, domain = raw.strip().rpartition("@")
        if reserved_ok and local and re.fullmatch(r"[a-z0-9.-]+", domain.lower()):
            return f"{local}@{domain}".lower()
        raise Problem(422, str(error), slug="invalid-email") from None


class Tokens:
    """EdDSA access tokens as identity signs them (`at+jwt`, iss/aud/sub/exp/jti, roles,
    email), verified here too (the monolith is its own gateway), with the gateway's cache of
    verified tokens; and, in `trust_gateway` mode, the gateway's internal principal token."""

    def __init__(self, settings: Settings, key: Ed25519PrivateKey, kid: str) -> None:
        self.settings, self.key, self.kid = settings, key, kid
        self.public = jwt.PyJWK(self.jwk(), algorithm="EdDSA")
        # Step 2 of docs/migration.md: the gateway vouches for users signed in at identity.
        self.internal = InternalTokenCodec(settings.internal_secret.encode())
        self._verified: dict[str, tuple[Principal, float]] = {}

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.OKPAlgorithm.to_jwk(
            self.key.public_key(), as_dict=True
        )
        return {**jwk, "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def issue(self, user: dict[str, Any]) -> str:
        issued = int(time.time())
        claims = {
            "iss": self.settings.issuer,
            "aud": self.settings.audience,
            "sub": user["id"],
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.settings.access_token_ttl,
            "jti": uuid.uuid4().hex,
            "roles": sorted(filter(None, user["roles"].split(","))),
            "email": user["email"],
        }
        return jwt.encode(
            claims, self.key, algorithm="EdDSA", headers={"kid": self.kid, "typ": "at+jwt"}
        )

    def principal(self, request: Request) -> Principal | None:
        internal = request.headers.get("x-mercato-principal")
        if internal and self.settings.trust_gateway:
            # The gateway checked the bearer token (identity's, which this key cannot).
            return self._internal(internal)
        authorization = request.headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Problem(
                    401, "use 'Authorization: Bearer <access token>'", slug="unauthenticated"
                )
            return self.verify(token.strip())
        return None

    def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        now = time.time()
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != "at+jwt" or header.get("kid") != self.kid:
                raise jwt.InvalidTokenError("not one of our access tokens")
            claims = jwt.decode(
                token,
                self.public,
                algorithms=["EdDSA"],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=5,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Problem(401, "the access token has expired", slug="unauthenticated") from None
        except jwt.PyJWTError:
            raise Problem(401, "the access token is not valid", slug="unauthenticated") from None
        principal = Principal(
            str(claims["sub"]), frozenset(claims.get("roles", [])), claims.get("email")
        )
        if len(self._verified) > 50_000:
            self._verified.clear()
        self._verified[token] = (principal, float(claims["exp"]))
        return principal

    def _internal(self, token: str) -> Principal:
        try:
            vouched = self.internal.verify(token)
        except MercatoError as error:
            raise Problem(401, error.detail, slug="unauthenticated") from None
        return Principal(vouched.subject, vouched.roles, vouched.email)


async def signing_key(store: Store) -> tuple[Ed25519PrivateKey, str]:
    """The signing key, kept in the database so tokens survive a restart."""
    async with store.write() as tx:
        found = await one(tx, "SELECT kid, private_pem FROM signing_keys LIMIT 1")
        if found is None:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
            found = {"kid": f"monolith-{uuid.uuid4().hex[:12]}", "private_pem": pem}
            await tx.execute(text("INSERT INTO signing_keys VALUES (:kid, :private_pem)"), found)
    loaded = serialization.load_pem_private_key(found["private_pem"].encode(), password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    return loaded, found["kid"]


def total(order: dict[str, Any]) -> str:
    return f"{order['total_amount'] / 100:.2f} {order['currency']}"


async def notify(
    tx: AsyncConnection, user_id: str, kind: str, subject: str, body: str, now: str
) -> None:
    """The user's mailbox, written in the transaction that decided what it tells (what the
    notifications service does from the events)."""
    await tx.execute(
        text("INSERT INTO notifications VALUES (:id, :user, :kind, :subject, :body, :at)"),
        {
            "id": str(uuid.uuid4()),
            "user": user_id,
            "kind": kind,
            "subject": subject,
            "body": body,
            "at": now,
        },
    )


# -- request bodies (the services' schemas) -------------------------------------------------


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[str, Field(max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    name: Annotated[str, Field(min_length=1, max_length=100)]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class MoneyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Annotated[StrictInt, Field(ge=0, le=MAX_TOTAL)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    sku: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=5000)] = ""
    category: Annotated[str, Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=50)]
    price: MoneyIn
    image_url: Annotated[str | None, Field(max_length=2048)] = None


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    quantity: Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)]


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]
    payment_token: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], raw: bytes) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise invalid(error) from None


# -- documents ------------------------------------------------------------------------------


def product_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "sku": row["sku"],
        "name": row["name"],
        "description": row["description"],
        "category": row["category"],
        "price": {"amount": row["price_amount"], "currency": row["currency"]},
        "image_url": row["image_url"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def order_json(order: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": order["id"],
        "status": order["status"],
        "reason": order["reason"],
        "cancellation": None,
        "items": [
            {
                "product_id": li["product_id"],
                "sku": li["sku"],
                "name": li["name"],
                "quantity": li["quantity"],
                "unit_price": {"amount": li["unit_amount"], "currency": li["currency"]},
            }
            for li in lines
        ],
        "total": {"amount": order["total_amount"], "currency": order["currency"]},
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
    }


def payment_json(p: dict[str, Any]) -> dict[str, Any]:
    def money(amount: int) -> dict[str, Any]:
        return {"amount": amount, "currency": p["currency"]}

    return {
        "payment_id": p["id"],
        "order_id": p["order_id"],
        "status": p["status"],
        "amount": money(p["amount"]),
        "authorized": money(p["authorized"]),
        "captured": money(p["captured"]),
        "voided": money(p["voided"]),
        "refunded": money(0),
        "decline_reason": p["decline_reason"],
        "created_at": p["created_at"],
        "updated_at": p["updated_at"],
    }


def fingerprint(body: OrderIn) -> str:
    return hashlib.sha256(
        orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


# -- the shop -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Priced:
    id: str
    sku: str
    name: str
    amount: int
    currency: str


class PspUnavailable(Exception):
    """No usable answer from the psp (it may or may not have acted)."""


class Shop:
    """The use cases, over the store and the psp."""

    def __init__(
        self, settings: Settings, store: Store, http: aiohttp.ClientSession, tokens: Tokens
    ) -> None:
        self.settings, self.store, self.http, self.tokens = settings, store, http, tokens
        self._running: dict[str, asyncio.Task[None]] = {}

    # identity

    async def register(
        self, body: RegisterIn, *, roles: str = "customer", reserved_ok: bool = False
    ) -> dict[str, Any]:
        email = normalize_email(body.email, reserved_ok=reserved_ok)
        password = check_password(body.password, email)
        name = unicodedata.normalize("NFC", body.name.strip())
        if not name or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
            raise Problem(422, "the name must be a single line", slug="validation-error")
        password_hash = await asyncio.to_thread(HASHER.hash, password)
        user = {
            "id": str(uuid.uuid4()),
            "email": email,
            "name": name,
            "password_hash": password_hash,
            "roles": roles,
            "created_at": iso(utc_now()),
        }
        async with self.store.write() as tx:
            if await one(tx, "SELECT 1 FROM users WHERE email = :email", email=email):
                raise Problem(409, "an account with this email address exists", slug="email-taken")
            await tx.execute(
                text(
                    "INSERT INTO users VALUES (:id, :email, :name, :password_hash, :roles, :created_at)"
                ),
                user,
            )
            await notify(tx, user["id"], "welcome", f"Welcome to Mercato, {name}",
                         f"Hello {name},\n\nyour Mercato account ({email}) is ready.", user["created_at"])  # fmt: skip
        return {"id": user["id"], "email": email, "name": name}

    async def sign_in(self, body: TokenIn) -> dict[str, Any]:
        try:
            email = normalize_email(body.email, reserved_ok=True)
        except Problem:
            email = ""
        async with self.store.read() as tx:
            user = await one(tx, "SELECT * FROM users WHERE email = :email", email=email)
        password = unicodedata.normalize("NFKC", body.password)
        # An unknown account costs what a wrong password does.
        stored = (
            user["password_hash"]
            if user
            else await asyncio.to_thread(HASHER.hash, "unknown account")
        )

        def matches() -> bool:
            try:
                return HASHER.verify(stored, password)
            except (VerificationError, InvalidHashError):
                return False

        if not await asyncio.to_thread(matches) or user is None:
            raise Problem(
                401, "the email address or the password is wrong", slug="invalid-credentials"
            )
        refresh = secrets.token_urlsafe(32)
        now = utc_now()
        async with self.store.write() as tx:
            await tx.execute(
                text("INSERT INTO refresh_tokens VALUES (:h, :user, :at, :exp)"),
                {
                    "h": hashlib.sha256(refresh.encode()).hexdigest(),
                    "user": user["id"],
                    "at": iso(now),
                    "exp": iso(now + timedelta(days=14)),
                },
            )
        return {
            "access_token": self.tokens.issue(user),
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_ttl,
            "refresh_token": refresh,
        }

    # catalog and inventory

    async def add_product(self, body: ProductIn, *, stock: int) -> dict[str, Any]:
        now = iso(utc_now())
        row = {
            "id": str(uuid.uuid4()),
            "sku": body.sku,
            "name": body.name,
            "description": body.description,
            "category": body.category,
            "price_amount": body.price.amount,
            "currency": body.price.currency,
            "image_url": body.image_url,
            "created_at": now,
            "updated_at": now,
        }
        async with self.store.write() as tx:
            if await one(tx, "SELECT 1 FROM products WHERE sku = :sku", sku=body.sku):
                raise Problem(409, f"a product with sku {body.sku} exists", slug="duplicate-sku")
            await tx.execute(
                text(
                    "INSERT INTO products VALUES (:id, :sku, :name, :description, :category, "
                    ":price_amount, :currency, :image_url, :created_at, :updated_at)"
                ),
                row,
            )
            await tx.execute(
                text("INSERT OR IGNORE INTO stock VALUES (:sku, 0, 0, 0, :at)"),
                {"sku": body.sku, "at": now},
            )
            await tx.execute(
                text("UPDATE stock SET available = available + :q WHERE sku = :sku"),
                {"q": stock, "sku": body.sku},
            )
            await self._movement(tx, body.sku, "initial", stock, None, now)
        return row

    async def list_products(
        self, limit: int, cursor: str | None, category: str | None
    ) -> dict[str, Any]:
        where = ["1 = 1"]
        params: dict[str, Any] = {"limit": limit + 1}
        if category:
            where.append("category = :category")
            params["category"] = category
        if cursor:
            name, last_id = decode_cursor(cursor)
            where.append("(name > :name OR (name = :name AND id > :last_id))")
            params.update(name=name, last_id=last_id)
        async with self.store.read() as tx:
            found = await rows(
                tx,
                f"SELECT * FROM products WHERE {' AND '.join(where)} "  # noqa: S608  (fixed fragments)
                "ORDER BY name, id LIMIT :limit",
                **params,
            )
        page = found[:limit]
        last = page[-1] if len(found) > limit else None
        return {
            "items": [product_json(p) for p in page],
            "next_cursor": encode_cursor([last["name"], last["id"]]) if last else None,
        }

    async def product(self, product_id: str) -> dict[str, Any]:
        async with self.store.read() as tx:
            found = await one(tx, "SELECT * FROM products WHERE id = :id", id=product_id)
            if found is None:
                raise Problem(404, f"there is no product {product_id}", slug="not-found")
            stock = await one(tx, "SELECT available FROM stock WHERE sku = :sku", sku=found["sku"])
        available = stock["available"] if stock else 0
        return {
            **product_json(found),
            "availability": {
                "sku": found["sku"],
                "available": available,
                "in_stock": available > 0,
            },
        }

    async def availability(self, skus: list[str]) -> dict[str, Any]:
        async with self.store.read() as tx:
            found = {
                r["sku"]: r["available"]
                for r in await rows(
                    tx,
                    "SELECT sku, available FROM stock WHERE sku IN (SELECT value FROM json_each(:skus))",
                    skus=orjson.dumps(skus).decode(),
                )
            }
        return {
            "items": [
                {"sku": s, "available": found.get(s, 0), "in_stock": found.get(s, 0) > 0}
                for s in skus
            ]
        }

    async def _priced(self, product_ids: list[str]) -> dict[str, Priced]:
        if self.settings.catalog_url:
            # Strangler step 1: catalog is the source of products and prices, read over HTTP
            # as the orders service does; stock stays here, by SKU.
            answers = await asyncio.gather(*(self._catalog_product(pid) for pid in product_ids))
            return {p.id: p for p in answers if p is not None}
        async with self.store.read() as tx:
            found = await rows(
                tx,
                "SELECT * FROM products WHERE id IN (SELECT value FROM json_each(:ids))",
                ids=orjson.dumps(product_ids).decode(),
            )
        return {
            r["id"]: Priced(r["id"], r["sku"], r["name"], r["price_amount"], r["currency"])
            for r in found
        }

    async def _catalog_product(self, product_id: str) -> Priced | None:
        try:
            async with self.http.get(
                f"{self.settings.catalog_url}/api/v1/products/{product_id}",
                timeout=aiohttp.ClientTimeout(total=3),
            ) as answer:
                if answer.status == 404:
                    return None
                if answer.status != 200:
                    raise Problem(
                        503,
                        "the catalog cannot price the order right now",
                        slug="catalog-unavailable",
                    )
                body = await answer.json()
        except (aiohttp.ClientError, TimeoutError):
            raise Problem(
                503, "the catalog cannot price the order right now", slug="catalog-unavailable"
            ) from None
        price = body["price"]
        return Priced(
            product_id, body["sku"], body["name"], int(price["amount"]), price["currency"]
        )

    # orders

    async def place_order(
        self, principal: Principal, key: str | None, body: OrderIn
    ) -> tuple[int, bytes, bool]:
        if key is None or not key.strip():
            raise Problem(
                428,
                "placing an order needs an Idempotency-Key header",
                slug="idempotency-key-missing",
            )
        if not re.fullmatch(r"[\x21-\x7e]{1,255}", key):
            raise Problem(
                400,
                "the Idempotency-Key must be 1-255 visible ASCII characters",
                slug="invalid-idempotency-key",
            )
        digest = fingerprint(body)
        async with self.store.read() as tx:
            known = await one(
                tx,
                "SELECT * FROM idempotency_keys WHERE user_id = :u AND key = :k",
                u=principal.subject,
                k=key,
            )
        if known is not None:
            return self._replay(known, digest)
        ids = [line.product_id for line in body.items]
        if len(set(ids)) != len(ids):
            raise Problem(422, "each product may appear on one line only", slug="duplicate-product")
        priced = await self._priced(ids)
        unknown = [pid for pid in ids if pid not in priced]
        if unknown:
            raise Problem(422, f"no such product: {', '.join(unknown)}", slug="unknown-product")
        currencies = {priced[pid].currency for pid in ids}
        if len(currencies) > 1:
            raise Problem(
                422, "all lines of an order must be in one currency", slug="mixed-currency"
            )
        total = sum(priced[line.product_id].amount * line.quantity for line in body.items)
        if total > MAX_TOTAL:
            raise Problem(
                422, f"the total may not exceed {MAX_TOTAL} minor units", slug="order-too-large"
            )
        now = iso(utc_now())
        order: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "user_id": principal.subject,
            "status": "PENDING",
            "reason": None,
            "total_amount": total,
            "currency": currencies.pop(),
            "payment_token": body.payment_token,
            "step": "reserve",
            "created_at": now,
            "updated_at": now,
        }
        lines = [
            {
                "order_id": order["id"],
                "position": n,
                "product_id": line.product_id,
                "sku": priced[line.product_id].sku,
                "name": priced[line.product_id].name,
                "quantity": line.quantity,
                "unit_amount": priced[line.product_id].amount,
                "currency": order["currency"],
            }
            for n, line in enumerate(body.items)
        ]
        answer = orjson.dumps(order_json(order, lines))
        async with self.store.write() as tx:
            known = await one(
                tx,
                "SELECT * FROM idempotency_keys WHERE user_id = :u AND key = :k",
                u=principal.subject,
                k=key,
            )
            if known is not None:  # a twin of this request won the race
                return self._replay(known, digest)
            pending = await one(
                tx,
                "SELECT count(*) AS n FROM orders WHERE user_id = :u AND status = 'PENDING'",
                u=principal.subject,
            )
            if pending and pending["n"] >= self.settings.max_pending:
                raise Problem(
                    429,
                    f"you have {self.settings.max_pending} orders pending; wait for them",
                    slug="too-many-pending-orders",
                )
            await tx.execute(
                text(
                    "INSERT INTO orders VALUES (:id, :user_id, :status, :reason, :total_amount, "
                    ":currency, :payment_token, :step, :created_at, :updated_at)"
                ),
                order,
            )
            await tx.execute(
                text(
                    "INSERT INTO order_lines VALUES (:order_id, :position, :product_id, :sku, :name, "
                    ":quantity, :unit_amount, :currency)"
                ),
                lines,
            )
            await tx.execute(
                text("INSERT INTO idempotency_keys VALUES (:u, :k, :f, 202, :b, :o, :at)"),
                {
                    "u": principal.subject,
                    "k": key,
                    "f": digest,
                    "b": answer,
                    "o": order["id"],
                    "at": now,
                },
            )
        self.start_checkout(order["id"])
        return 202, answer, False

    @staticmethod
    def _replay(known: dict[str, Any], digest: str) -> tuple[int, bytes, bool]:
        if known["fingerprint"] != digest:
            raise Problem(
                422,
                "this Idempotency-Key was used for another request",
                slug="idempotency-key-reused",
            )
        return known["status"], bytes(known["body"]), True

    async def order(self, principal: Principal, order_id: str) -> dict[str, Any]:
        async with self.store.read() as tx:
            order = await one(tx, "SELECT * FROM orders WHERE id = :id", id=order_id)
            if (
                order is None or order["user_id"] != principal.subject
            ):  # another's order does not exist for you
                raise Problem(404, f"there is no order {order_id}", slug="not-found")
            lines = await rows(
                tx, "SELECT * FROM order_lines WHERE order_id = :id ORDER BY position", id=order_id
            )
            payment = await one(tx, "SELECT * FROM payments WHERE order_id = :id", id=order_id)
        return {**order_json(order, lines), "payment": payment_json(payment) if payment else None}

    async def orders(self, principal: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"u": principal.subject, "limit": limit + 1}
        after = ""
        if cursor:
            created, last_id = decode_cursor(cursor)
            after = "AND (created_at < :c OR (created_at = :c AND id < :i))"
            params.update(c=created, i=last_id)
        async with self.store.read() as tx:
            found = await rows(
                tx,
                f"SELECT * FROM orders WHERE user_id = :u {after} "  # noqa: S608  (fixed fragments)
                "ORDER BY created_at DESC, id DESC LIMIT :limit",
                **params,
            )
            page = found[:limit]
            lines = await rows(
                tx,
                "SELECT * FROM order_lines WHERE order_id IN (SELECT value FROM json_each(:ids)) "
                "ORDER BY position",
                ids=orjson.dumps([o["id"] for o in page]).decode(),
            )
        by_order: dict[str, list[dict[str, Any]]] = {}
        for line in lines:
            by_order.setdefault(line["order_id"], []).append(line)
        last = page[-1] if len(found) > limit else None
        return {
            "items": [order_json(o, by_order.get(o["id"], [])) for o in page],
            "next_cursor": encode_cursor([last["created_at"], last["id"]]) if last else None,
        }

    # the checkout: the saga's steps, as local transactions and two psp calls

    def start_checkout(self, order_id: str) -> None:
        if order_id not in self._running:
            task = asyncio.create_task(self._checkout(order_id))
            self._running[order_id] = task
            task.add_done_callback(lambda _: self._running.pop(order_id, None))

    async def resume_checkouts(self) -> int:
        """After a restart: every checkout that had not finished goes on from its step."""
        async with self.store.read() as tx:
            unfinished = await rows(tx, "SELECT id FROM orders WHERE step != 'done'")
        for row in unfinished:
            self.start_checkout(row["id"])
        return len(unfinished)

    async def stop(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _checkout(self, order_id: str) -> None:
        delay = 0.05
        while True:
            try:
                async with self.store.read() as tx:
                    order = await one(tx, "SELECT * FROM orders WHERE id = :id", id=order_id)
                if order is None or order["step"] == "done":
                    return
                step = order["step"]
                if step == "reserve":
                    await self._reserve(order)
                elif step == "authorize":
                    await self._authorize(order)
                elif step == "capture":
                    await self._capture(order)
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the psp silent, the database busy: try again later
                if isinstance(error, PspUnavailable):
                    log.warning("psp unavailable for order %s: %s; retrying", order_id, error)
                else:
                    log.exception("checkout of order %s failed; retrying", order_id)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)

    async def _reserve(self, order: dict[str, Any]) -> None:
        """All lines or none: stock available → reserved, plus the payment to come."""
        now = iso(utc_now())
        async with self.store.write() as tx:
            lines = await rows(
                tx,
                "SELECT sku, sum(quantity) AS quantity FROM order_lines WHERE order_id = :id "
                "GROUP BY sku ORDER BY sku",
                id=order["id"],
            )
            stock = {
                r["sku"]: r["available"]
                for r in await rows(
                    tx,
                    "SELECT sku, available FROM stock WHERE sku IN (SELECT value FROM json_each(:skus))",
                    skus=orjson.dumps([li["sku"] for li in lines]).decode(),
                )
            }
            if any(stock.get(li["sku"], 0) < li["quantity"] for li in lines):
                await self._settle(tx, order["id"], "REJECTED", "out_of_stock", now)
                return
            for li in lines:
                await tx.execute(
                    text(
                        "UPDATE stock SET available = available - :q, reserved = reserved + :q, "
                        "updated_at = :at WHERE sku = :sku"
                    ),
                    {"q": li["quantity"], "sku": li["sku"], "at": now},
                )
                await self._movement(tx, li["sku"], "reserve", li["quantity"], order["id"], now)
            expires = iso(utc_now() + timedelta(seconds=900))
            await tx.execute(
                text("INSERT INTO reservations VALUES (:o, 'held', NULL, :exp, :at, :at)"),
                {"o": order["id"], "exp": expires, "at": now},
            )
            await tx.execute(
                text(
                    "INSERT INTO payments VALUES (:id, :o, 'pending', :amount, :currency, NULL, 0, 0, 0, "
                    "NULL, :at, :at)"
                ),
                {
                    "id": str(uuid.uuid4()),
                    "o": order["id"],
                    "at": now,
                    "amount": order["total_amount"],
                    "currency": order["currency"],
                },
            )
            await tx.execute(
                text("UPDATE orders SET step = 'authorize' WHERE id = :id"), {"id": order["id"]}
            )

    async def _authorize(self, order: dict[str, Any]) -> None:
        body = {
            "amount": order["total_amount"],
            "currency": order["currency"],
            "token": order["payment_token"],
            "reference": order["id"],
        }
        try:
            status, answer = await self._psp(
                "POST", "/v1/authorizations", body, key=f"{order['id']}:authorize"
            )
        except PspUnavailable:
            age = (
                utc_now() - datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
            ).total_seconds()
            if age < AUTHORIZE_DEADLINE:
                raise
            await self._give_up(order)  # as the saga's step timeout: compensate, REJECTED
            return
        now = iso(utc_now())
        async with self.store.write() as tx:
            payment = await one(tx, "SELECT id FROM payments WHERE order_id = :o", o=order["id"])
            assert payment is not None
            if status < 300 and answer["status"] == "authorized":
                await tx.execute(
                    text(
                        "UPDATE payments SET status = 'authorized', psp_id = :psp, authorized = :a, "
                        "updated_at = :at WHERE id = :id"
                    ),
                    {"psp": answer["id"], "a": answer["amount"], "at": now, "id": payment["id"]},
                )
                await self._ledger(
                    tx, payment["id"], "authorization", answer["amount"], answer["id"], now
                )
                # the pivot: from here the checkout only goes forward
                await tx.execute(
                    text(
                        "UPDATE orders SET status = 'CONFIRMED', step = 'capture', updated_at = :at "
                        "WHERE id = :id"
                    ),
                    {"at": now, "id": order["id"]},
                )
                await notify(tx, order["user_id"], "order_confirmed", "Your order is confirmed",
                             f"Good news: your order {order['id']} is confirmed. Total: {total(order)}.", now)  # fmt: skip
                return
            reason = answer.get("decline_code") or answer.get("code") or f"http_{status}"
            await tx.execute(
                text(
                    "UPDATE payments SET status = 'declined', psp_id = :psp, decline_reason = :r, "
                    "updated_at = :at WHERE id = :id"
                ),
                {"psp": answer.get("id"), "r": reason, "at": now, "id": payment["id"]},
            )
            await self._release(tx, order["id"], "compensation", now)
            await self._settle(tx, order["id"], "REJECTED", "payment_declined", now)

    async def _give_up(self, order: dict[str, Any]) -> None:
        """The psp stayed silent past the deadline: void whatever it may have authorized."""
        status, found = await self._psp(
            "GET", f"/v1/authorizations?idempotency_key={order['id']}:authorize"
        )
        for item in found.get("items", []) if status == 200 else []:
            if item["status"] == "authorized":
                await self._psp(
                    "POST", f"/v1/authorizations/{item['id']}/void", {}, key=f"{order['id']}:void"
                )
        now = iso(utc_now())
        async with self.store.write() as tx:
            await tx.execute(
                text("UPDATE payments SET status = 'voided', updated_at = :at WHERE order_id = :o"),
                {"at": now, "o": order["id"]},
            )
            await self._release(tx, order["id"], "compensation", now)
            await self._settle(tx, order["id"], "REJECTED", "timeout", now)

    async def _capture(self, order: dict[str, Any]) -> None:
        """Retriable: the same key until the psp answers; then stock reserved → committed."""
        async with self.store.read() as tx:
            payment = await one(tx, "SELECT * FROM payments WHERE order_id = :o", o=order["id"])
        assert payment is not None
        status, answer = await self._psp(
            "POST",
            f"/v1/authorizations/{payment['psp_id']}/capture",
            {"amount": payment["authorized"]},
            key=f"{order['id']}:capture",
        )
        if status >= 300:
            raise PspUnavailable(f"capture refused: HTTP {status} {answer}")
        now = iso(utc_now())
        async with self.store.write() as tx:
            await tx.execute(
                text(
                    "UPDATE payments SET status = 'captured', captured = :c, updated_at = :at "
                    "WHERE id = :id"
                ),
                {"c": answer["captured_amount"], "at": now, "id": payment["id"]},
            )
            await self._ledger(
                tx, payment["id"], "capture", answer["captured_amount"], answer["id"], now
            )
            for li in await rows(
                tx,
                "SELECT sku, sum(quantity) AS quantity FROM order_lines WHERE order_id = :id "
                "GROUP BY sku ORDER BY sku",
                id=order["id"],
            ):
                await tx.execute(
                    text(
                        "UPDATE stock SET reserved = reserved - :q, committed = committed + :q, "
                        "updated_at = :at WHERE sku = :sku"
                    ),
                    {"q": li["quantity"], "sku": li["sku"], "at": now},
                )
                await self._movement(tx, li["sku"], "commit", li["quantity"], order["id"], now)
            await tx.execute(
                text(
                    "UPDATE reservations SET status = 'committed', updated_at = :at WHERE order_id = :o"
                ),
                {"at": now, "o": order["id"]},
            )
            await tx.execute(
                text("UPDATE orders SET step = 'done', payment_token = NULL WHERE id = :id"),
                {"id": order["id"]},
            )

    async def _release(self, tx: AsyncConnection, order_id: str, reason: str, now: str) -> None:
        held = await one(tx, "SELECT status FROM reservations WHERE order_id = :o", o=order_id)
        if held is None or held["status"] != "held":
            return
        for li in await rows(
            tx,
            "SELECT sku, sum(quantity) AS quantity FROM order_lines WHERE order_id = :id "
            "GROUP BY sku ORDER BY sku",
            id=order_id,
        ):
            await tx.execute(
                text(
                    "UPDATE stock SET available = available + :q, reserved = reserved - :q, "
                    "updated_at = :at WHERE sku = :sku"
                ),
                {"q": li["quantity"], "sku": li["sku"], "at": now},
            )
            await self._movement(tx, li["sku"], "release", li["quantity"], order_id, now)
        await tx.execute(
            text(
                "UPDATE reservations SET status = 'released', reason = :r, updated_at = :at "
                "WHERE order_id = :o"
            ),
            {"r": reason, "at": now, "o": order_id},
        )

    @staticmethod
    async def _settle(
        tx: AsyncConnection, order_id: str, status: str, reason: str | None, now: str
    ) -> None:
        await tx.execute(
            text(
                "UPDATE orders SET status = :s, reason = :r, step = 'done', payment_token = NULL, "
                "updated_at = :at WHERE id = :id"
            ),
            {"s": status, "r": reason, "at": now, "id": order_id},
        )
        order = await one(tx, "SELECT * FROM orders WHERE id = :id", id=order_id)
        assert order is not None
        await notify(tx, order["user_id"], "order_rejected", "We could not accept your order",
                     f"Sorry, we could not accept your order {order_id} ({total(order)}): {reason}.\n"
                     "You have not been charged.", now)  # fmt: skip

    @staticmethod
    async def _movement(
        tx: AsyncConnection, sku: str, kind: str, quantity: int, order_id: str | None, now: str
    ) -> None:
        await tx.execute(
            text(
                "INSERT INTO movements (sku, kind, quantity, order_id, at) VALUES (:s, :k, :q, :o, :at)"
            ),
            {"s": sku, "k": kind, "q": quantity, "o": order_id, "at": now},
        )

    @staticmethod
    async def _ledger(
        tx: AsyncConnection, payment_id: str, kind: str, amount: int, reference: str, now: str
    ) -> None:
        await tx.execute(
            text(
                "INSERT INTO payment_ledger (payment_id, kind, amount, psp_reference, at) "
                "VALUES (:p, :k, :a, :r, :at)"
            ),
            {"p": payment_id, "k": kind, "a": amount, "r": reference, "at": now},
        )

    async def _psp(
        self, method: str, path: str, body: Any = None, *, key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Idempotency-Key": key} if key else {}
        try:
            async with self.http.request(
                method,
                f"{self.settings.psp_url}{path}",
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as answer:
                if answer.status >= 500 or answer.status in (408, 425, 429):
                    raise PspUnavailable(f"{method} {path}: HTTP {answer.status}")
                return answer.status, await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise PspUnavailable(f"{method} {path}: {error!r}") from None

    # the audit: the invariants `mercato check` checks across services, in one database

    async def audit(self) -> dict[str, Any]:
        async with self.store.read() as tx:
            orders = await rows(
                tx,
                "SELECT o.id, o.status, o.step, r.status AS reservation, p.status AS payment, "
                "p.captured, p.amount, (SELECT count(*) FROM payment_ledger l WHERE "
                "l.payment_id = p.id AND l.kind = 'capture') AS captures FROM orders o "
                "LEFT JOIN reservations r ON r.order_id = o.id "
                "LEFT JOIN payments p ON p.order_id = o.id",
            )
            stock = await rows(
                tx,
                "SELECT s.sku, s.available + s.reserved + s.committed AS held, "
                "coalesce((SELECT sum(quantity) FROM movements m WHERE m.sku = s.sku AND "
                "m.kind IN ('initial', 'restock')), 0) AS received FROM stock s",
            )
        violations = [
            f"stock of {s['sku']}: {s['held']} held, {s['received']} received"
            for s in stock
            if s["held"] != s["received"]
        ]
        for o in orders:
            if o["step"] != "done":
                continue
            if o["status"] == "CONFIRMED" and (
                o["reservation"] != "committed"
                or o["captures"] != 1
                or o["captured"] != o["amount"]
            ):
                violations.append(
                    f"order {o['id']}: confirmed but {o['reservation']} stock, {o['captures']} captures"
                )
            if o["status"] == "REJECTED" and (o["reservation"] == "held" or o["captured"]):
                violations.append(f"order {o['id']}: rejected but holds stock or money")
        unsettled = sum(1 for o in orders if o["step"] != "done")
        return {"orders_checked": len(orders), "unsettled": unsettled, "violations": violations}


class ServedBy:
    """Marks every answer `X-Served-By: monolith`, so where a request landed is visible
    through the gateway (docs/migration.md). Plain ASGI: no per-request task or stream."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-served-by", b"monolith")]
            await send(message)

        await self.app(scope, receive, tagged)


# -- the HTTP edge --------------------------------------------------------------------------


def build_app(settings: Settings) -> FastAPI:
    state: dict[str, Any] = {}

    def shop() -> Shop:
        found: Shop = state["shop"]
        return found

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.data_dir / "monolith.db")
        await store.create_schema()
        key, kid = await signing_key(store)
        connector = aiohttp.TCPConnector(limit=200, limit_per_host=100)
        async with aiohttp.ClientSession(connector=connector) as http:
            state["shop"] = the_shop = Shop(settings, store, http, Tokens(settings, key, kid))
            await seed(the_shop, settings)
            resumed = await the_shop.resume_checkouts()
            log.warning(
                "monolith ready on %s:%s (%d checkouts resumed)",
                settings.host,
                settings.port,
                resumed,
            )
            try:
                yield
            finally:
                await the_shop.stop()
                await store.close()

    app = FastAPI(
        title="Mercato monolith (baseline)",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )

    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, Problem)
        headers = None
        if error.status == 401:
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        elif error.status == 429:
            headers = {"Retry-After": "10"}
        return problem_response(error, request.url.path, headers)

    async def on_invalid_query(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        problem = Problem(422, "the request is not valid", slug="validation-error",
                          errors=[{"location": str(e["loc"][0]), "field": ".".join(map(str, e["loc"][1:])),
                                   "message": e["msg"]} for e in error.errors()])  # fmt: skip
        return problem_response(problem, request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_invalid_query)
    app.add_middleware(ServedBy)

    def user(request: Request, role: str | None = None) -> Principal:
        principal = shop().tokens.principal(request)
        if principal is None:
            raise Problem(
                401,
                "sign in first: send 'Authorization: Bearer <access token>'",
                slug="unauthenticated",
            )
        if role is not None and role not in principal.roles:
            raise Problem(403, f"this needs the {role} role", slug="forbidden")
        return principal

    def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(
            orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
        )

    @app.get("/livez")
    async def livez() -> Response:
        return json({"status": "alive"})

    @app.get("/readyz")
    async def readyz() -> Response:
        return json(
            {"status": "ready"} if "shop" in state else {"status": "starting"},
            200 if "shop" in state else 503,
        )

    @app.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        return json({"keys": [shop().tokens.jwk()]})

    @app.post("/api/v1/auth/register")
    async def register(request: Request) -> Response:
        return json(await shop().register(parse(RegisterIn, await request.body())), 201)

    @app.post("/api/v1/auth/token")
    async def token(request: Request) -> Response:
        return json(await shop().sign_in(parse(TokenIn, await request.body())))

    @app.get("/api/v1/products")
    async def products(
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        category: Annotated[str | None, Query(max_length=50)] = None,
    ) -> Response:
        return json(await shop().list_products(limit, cursor, category))

    @app.get("/api/v1/products/{product_id}")
    async def product(product_id: str) -> Response:
        return json(await shop().product(product_id))

    @app.post("/api/v1/products")
    async def create_product(request: Request) -> Response:
        user(request, "admin")
        row = await shop().add_product(
            parse(ProductIn, await request.body()), stock=settings.initial_stock
        )
        return json(product_json(row), 201, {"Location": f"/api/v1/products/{row['id']}"})

    @app.get("/api/v1/inventory/availability")
    async def availability(skus: Annotated[str, Query(min_length=1, max_length=6500)]) -> Response:
        return json(await shop().availability([s for s in skus.split(",") if s][:100]))

    @app.post("/api/v1/orders")
    async def place_order(request: Request) -> Response:
        principal = user(request)  # before the body is read: a stranger learns nothing of it
        status, body, replayed = await shop().place_order(
            principal, request.headers.get("idempotency-key"), parse(OrderIn, await request.body())
        )
        headers = {"Location": f"/api/v1/orders/{orjson.loads(body)['id']}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    @app.get("/api/v1/orders")
    async def list_orders(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> Response:
        return json(await shop().orders(user(request), limit, cursor))

    @app.get("/api/v1/orders/{order_id}")
    async def get_order(request: Request, order_id: str) -> Response:
        return json(await shop().order(user(request), order_id))

    @app.get("/api/v1/notifications")
    async def notifications(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> Response:
        params: dict[str, Any] = {"u": user(request).subject, "limit": limit + 1}
        after = ""
        if cursor:
            params["c"], params["i"] = decode_cursor(cursor)
            after = "AND (created_at < :c OR (created_at = :c AND id < :i))"
        async with shop().store.read() as tx:
            found = await rows(tx, "SELECT id, kind, subject, body, created_at FROM notifications "  # noqa: S608
                                   f"WHERE user_id = :u {after} ORDER BY created_at DESC, id DESC LIMIT :limit",
                               **params)  # fmt: skip
        last = found[limit - 1] if len(found) > limit else None
        return json({"items": found[:limit],
                     "next_cursor": encode_cursor([last["created_at"], last["id"]]) if last else None})  # fmt: skip

    @app.get("/internal/audit")
    async def audit(request: Request) -> Response:
        user(request, "admin")
        return json(await shop().audit())

    return app


async def seed(shop: Shop, settings: Settings) -> None:
    """The dev admin, and the products of `seed_file` when there are none yet."""
    async with shop.store.read() as tx:
        has_admin = await one(
            tx, "SELECT 1 FROM users WHERE email = :e", e=settings.admin_email.lower()
        )
        has_products = await one(tx, "SELECT 1 FROM products LIMIT 1")
    if not has_admin:
        admin = RegisterIn(
            email=settings.admin_email, password=settings.admin_password, name="Admin"
        )
        with contextlib.suppress(Problem):  # another start won the race
            await shop.register(admin, roles="admin,customer", reserved_ok=True)
    if settings.seed_file and not has_products:
        for item in orjson.loads(Path(settings.seed_file).read_bytes()):
            await shop.add_product(ProductIn.model_validate(item), stock=settings.initial_stock)


def main() -> None:
    settings = Settings.from_env()
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
