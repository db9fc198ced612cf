"""The chaos workload: shoppers through the gateway, every operation in a history.

Each shopper registers, logs in (again before its token expires), browses, places orders
with a mix of approving and declining payment tokens (some for more than the stock), reads
them back, cancels some, and re-sends some with the same Idempotency-Key. Operations are
paced by one shared rate (`Pacer`) and recorded Jepsen-style as

- `ok`: the service answered that it was done (2xx);
- `fail`: it answered that it was not (4xx, or the connection was refused: nothing sent);
- `unknown`: no definite answer (a timeout, a cut connection, a 5xx): the effect may or may
  not have happened. A timeout is never taken for a failure.

An order whose attempt was unknown is retried with the same Idempotency-Key (and the same
body) a few times; every attempt is an operation of its own.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

APPROVING = "tok_visa"
DECLINING = ("tok_chargeDeclined", "tok_insufficientFunds")
PASSWORD = "chaos correct horse battery"  # noqa: S105 (the test shoppers' own)
ORDER_RETRIES = 3
RETRY_BACKOFF = (0.5, 1.0, 2.0)


@dataclass
class Op:
    """One client operation and what came of it."""

    index: int
    shopper: int
    kind: str  # register, login, browse, product, order, read, cancel
    start: float  # seconds since the run began
    end: float = 0.0
    outcome: str = "unknown"  # ok, fail, unknown
    status: int | None = None
    key: str | None = None  # an order's Idempotency-Key
    order_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def latency(self) -> float:
        return self.end - self.start

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "shopper": self.shopper, "kind": self.kind,
            "start": round(self.start, 4), "end": round(self.end, 4), "outcome": self.outcome,
            "status": self.status, "key": self.key, "order_id": self.order_id,
            "detail": self.detail,
        }  # fmt: skip


class History:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.t0 = clock()
        self.ops: list[Op] = []

    def now(self) -> float:
        return self._clock() - self.t0

    def begin(self, shopper: int, kind: str, **fields: Any) -> Op:
        op = Op(len(self.ops), shopper, kind, self.now(), **fields)
        self.ops.append(op)
        return op

    def finish(self, op: Op, outcome: str, status: int | None = None, **detail: Any) -> Op:
        op.end = self.now()
        op.outcome = outcome
        op.status = status
        op.detail.update(detail)
        return op

    def counts(self) -> dict[str, int]:
        counts = {"ok": 0, "fail": 0, "unknown": 0}
        for op in self.ops:
            counts[op.outcome] = counts.get(op.outcome, 0) + 1
        return counts


@dataclass(frozen=True)
class Product:
    id: str
    sku: str
    price: int  # minor units
    stock: int | None  # units it started with, when the run made it (limited stock)


class Pacer:
    """At most `rate` operations per second over all shoppers, never a burst of catch-up."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = time.monotonic()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            self._next = max(self._next + self.interval, now)
            delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)


def outcome_of(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status >= 500:
        return "unknown"  # the gateway or a service may have acted before failing
    return "fail"


def _jwt_subject(token: str) -> str | None:
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    subject = claims.get("sub")
    return str(subject) if subject else None


@dataclass
class Intent:
    """One order a shopper means to place: one Idempotency-Key, one body, for good."""

    key: str
    body: bytes
    token: str
    lines: list[dict[str, Any]]
    order_id: str | None = None
    cancelled: bool = False


@dataclass
class Shopper:
    index: int
    email: str
    registered: bool = False
    user_id: str | None = None
    access_token: str | None = None
    token_expires: float = 0.0
    intents: list[Intent] = field(default_factory=list)

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access_token}"}


class Workload:
    def __init__(
        self,
        base_url: str,
        *,
        history: History,
        products: list[Product],
        rng: random.Random,
        rate: float,
        shoppers: int,
        run_id: str,
        timeout: float = 15.0,
    ) -> None:
        self.base = base_url
        self.history = history
        self.products = products
        self.limited = [p for p in products if p.stock is not None]
        self.rng = rng
        self.pacer = Pacer(rate)
        self.shoppers = [Shopper(n, f"chaos-{run_id}-{n}@example.com") for n in range(shoppers)]
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._stop = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(timeout=self.timeout, connector=connector) as session:
            self._session = session
            await asyncio.gather(*(self._shop(s) for s in self.shoppers))

    # -- one shopper -----------------------------------------------------------------------

    async def _shop(self, shopper: Shopper) -> None:
        rng = random.Random(self.rng.random())  # each shopper its own stream, from the seed
        await asyncio.sleep(rng.uniform(0, 1))
        while not self._stop.is_set():
            await self.pacer.wait()
            if self._stop.is_set():
                return
            if not shopper.registered:
                await self._register(shopper)
                continue
            if shopper.access_token is None or time.monotonic() > shopper.token_expires:
                await self._login(shopper)
                continue
            placed = [i for i in shopper.intents if i.order_id]
            choice = rng.choices(
                ("browse", "product", "order", "read", "cancel", "replay"),
                weights=(15, 15, 40, 15 if placed else 0, 7 if placed else 0, 8 if placed else 0),
            )[0]
            if choice == "browse":
                await self._browse(shopper, rng)
            elif choice == "product":
                await self._product(shopper, rng)
            elif choice == "order":
                await self._order(shopper, self._new_intent(rng))
            elif choice == "read":
                await self._read(shopper, rng.choice(placed))
            elif choice == "cancel":
                await self._cancel(shopper, rng.choice(placed))
            else:
                await self._replay(shopper, rng.choice(placed))

    async def _call(
        self, op: Op, method: str, path: str, *, body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any] | None:  # fmt: skip
        """The status and JSON answer, or None after recording a fail/unknown outcome."""
        assert self._session is not None
        sent = {"content-type": "application/json", **(headers or {})} if body else headers
        try:
            async with self._session.request(
                method, self.base + path, data=body, headers=sent
            ) as answer:
                raw = await answer.read()
                status = answer.status
        except aiohttp.ClientConnectorError as error:  # nothing was sent
            self.history.finish(op, "fail", None, error=type(error).__name__)
            return None
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            self.history.finish(op, "unknown", None, error=type(error).__name__)
            return None
        try:
            document = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            document = None
        return status, document

    async def _register(self, shopper: Shopper) -> None:
        op = self.history.begin(shopper.index, "register")
        body = orjson.dumps({"email": shopper.email, "password": PASSWORD, "name": "Chaos"})
        answer = await self._call(op, "POST", "/api/v1/auth/register", body=body)
        if answer is None:
            return
        status, document = answer
        self.history.finish(op, outcome_of(status), status)
        if status == 201:
            shopper.registered = True
            shopper.user_id = str(document["id"])
        elif status == 409:  # an earlier, unknown attempt went through
            shopper.registered = True

    async def _login(self, shopper: Shopper) -> None:
        op = self.history.begin(shopper.index, "login")
        body = orjson.dumps({"email": shopper.email, "password": PASSWORD})
        answer = await self._call(op, "POST", "/api/v1/auth/token", body=body)
        if answer is None:
            return
        status, document = answer
        self.history.finish(op, outcome_of(status), status)
        if status == 200:
            shopper.access_token = str(document["access_token"])
            # Log in again at 70% of the token's life: long runs outlive a token.
            life = float(document.get("expires_in", 300))
            shopper.token_expires = time.monotonic() + 0.7 * life
            shopper.user_id = shopper.user_id or _jwt_subject(shopper.access_token)
        elif status == 401:
            shopper.registered = False  # the registration never happened after all

    async def _browse(self, shopper: Shopper, rng: random.Random) -> None:
        op = self.history.begin(shopper.index, "browse")
        path = f"/api/v1/products?limit={rng.choice((10, 20, 50))}"
        answer = await self._call(op, "GET", path)
        if answer is not None:
            self.history.finish(op, outcome_of(answer[0]), answer[0])

    async def _product(self, shopper: Shopper, rng: random.Random) -> None:
        op = self.history.begin(shopper.index, "product")
        answer = await self._call(op, "GET", f"/api/v1/products/{rng.choice(self.products).id}")
        if answer is not None:
            self.history.finish(op, outcome_of(answer[0]), answer[0])

    def _new_intent(self, rng: random.Random) -> Intent:
        if self.limited and rng.random() < 0.7:
            product = rng.choice(self.limited)
        else:
            product = rng.choice(self.products)
        quantity = rng.choice((1, 1, 1, 2, 3))
        if product.stock is not None and rng.random() < 0.08:
            quantity = min(100, product.stock + 1)  # more than there ever was
        token = APPROVING if rng.random() < 0.7 else rng.choice(DECLINING)
        lines = [{"product_id": product.id, "sku": product.sku, "quantity": quantity}]
        body = orjson.dumps(
            {"items": [{"product_id": product.id, "quantity": quantity}], "payment_token": token}
        )
        return Intent(uuid.uuid4().hex, body, token, lines)

    async def _order(self, shopper: Shopper, intent: Intent) -> None:
        shopper.intents.append(intent)
        for attempt in range(ORDER_RETRIES + 1):
            outcome = await self._place(shopper, intent, retry=attempt > 0)
            if outcome != "unknown" or self._stop.is_set():
                return
            await asyncio.sleep(RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) - 1)])

    async def _place(self, shopper: Shopper, intent: Intent, *, retry: bool = False,
                     replay: bool = False) -> str:  # fmt: skip
        op = self.history.begin(
            shopper.index, "order", key=intent.key,
            detail={"token": intent.token, "lines": intent.lines, "user_id": shopper.user_id,
                    "retry": retry, "replay": replay},
        )  # fmt: skip
        headers = {**shopper.auth(), "idempotency-key": intent.key}
        answer = await self._call(op, "POST", "/api/v1/orders", body=intent.body, headers=headers)
        if answer is None:
            return op.outcome
        status, document = answer
        outcome = outcome_of(status)
        if status == 401:
            shopper.access_token = None
        if outcome == "ok" and isinstance(document, dict):
            op.order_id = str(document.get("id"))
            intent.order_id = intent.order_id or op.order_id
        self.history.finish(op, outcome, status)
        return outcome

    async def _replay(self, shopper: Shopper, intent: Intent) -> None:
        """The same request, same key, again: it must answer the same order."""
        await self._place(shopper, intent, replay=True)

    async def _read(self, shopper: Shopper, intent: Intent) -> None:
        op = self.history.begin(shopper.index, "read", key=intent.key, order_id=intent.order_id)
        answer = await self._call(
            op, "GET", f"/api/v1/orders/{intent.order_id}", headers=shopper.auth()
        )
        if answer is None:
            return
        status, document = answer
        if status == 401:
            shopper.access_token = None
        observed = document.get("status") if status == 200 and document else None
        self.history.finish(op, outcome_of(status), status, observed=observed)

    async def _cancel(self, shopper: Shopper, intent: Intent) -> None:
        op = self.history.begin(shopper.index, "cancel", key=intent.key, order_id=intent.order_id)
        answer = await self._call(
            op, "POST", f"/api/v1/orders/{intent.order_id}/cancel", headers=shopper.auth()
        )
        if answer is None:
            return
        status, _ = answer
        if status == 401:
            shopper.access_token = None
        if status == 202:
            intent.cancelled = True
        self.history.finish(op, outcome_of(status), status)
