"""`mercato load`: an open-model load generator for a running platform, through its gateway.

Open model: shoppers arrive at a constant rate, whatever the platform's latency. Arrival n
is *scheduled* at `start + n / rate` and its latency is counted from that scheduled time,
not from when the request happened to leave: a platform that stalls for a second is charged
for every arrival that should have been served in that second (no coordinated omission,
as in wrk2 and Gil Tene's "How NOT to measure latency"). A closed loop (N users that wait
for each answer before asking again) would instead slow its own arrivals down and report the
stall as one slow request.

An arrival is one step of a shopper's visit, drawn from a mix: browse a product list, open
a product page (composed with live availability), search, log in, register, or check out
(place an order with a payment token, mostly `tok_visa`, then poll the order until it is
no longer PENDING). Shoppers come from a pool registered and logged in before the run, so
the argon2 cost of creating them is not part of the measured window; `login` and
`register` arrivals pay it inside the window at their (small) share of the mix.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from mercato_cli.datadir import DataDir

# The shopper mix: share of arrivals per operation. Reads dominate, as in any shop;
# logins and registrations are rare and expensive (argon2id by design).
DEFAULT_MIX: dict[str, float] = {
    "browse": 0.35,
    "product": 0.28,
    "search": 0.12,
    "login": 0.04,
    "register": 0.01,
    "checkout": 0.20,
}
# Payment tokens a checkout uses, with their share: mostly approved, some declines.
DEFAULT_PAYMENTS: dict[str, float] = {
    "tok_visa": 0.90,
    "tok_chargeDeclined": 0.05,
    "tok_insufficientFunds": 0.05,
}
PASSWORD = "load generator passphrase"  # noqa: S105 - the pool's own throwaway accounts
FINAL = frozenset({"CONFIRMED", "REJECTED", "CANCELLED"})


# -- the open loop ------------------------------------------------------------------------


@dataclass
class ScheduleReport:
    """How well the generator kept its own schedule (the platform is not judged here)."""

    scheduled: int = 0
    dropped: int = 0  # arrivals not sent because max_in_flight journeys were still running
    max_start_lag_s: float = 0.0  # how late the generator itself started an arrival
    crashed: int = 0  # journeys that raised (a bug or an unexpected answer), not a latency
    last_crash: str = ""


Fire = Callable[[int, float], Coroutine[Any, Any, None]]


async def open_loop(
    rate: float,
    duration: float,
    fire: Fire,
    *,
    max_in_flight: int = 10_000,
    clock: Callable[[], float] = time.perf_counter,
    drain_timeout: float = 60.0,
) -> ScheduleReport:
    """Call `fire(n, scheduled_at)` for arrival n at `start + n / rate`, for `duration` seconds.

    Arrivals are never delayed by slow answers: each runs as its own task, and `scheduled_at`
    (on `clock`) is when it should have started, so a caller measures latency from there.
    When `max_in_flight` journeys are still running, an arrival is dropped and counted rather
    than queued (queuing it would hide the overload). Waits up to `drain_timeout` for the
    journeys still running after the last arrival, then cancels them.
    """
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    report = ScheduleReport()
    total = math.floor(rate * duration)
    tasks: set[asyncio.Task[None]] = set()

    def finished(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            report.crashed += 1
            report.last_crash = repr(error)

    start = clock()
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        report.scheduled += 1
        report.max_start_lag_s = max(report.max_start_lag_s, clock() - scheduled)
        if len(tasks) >= max_in_flight:
            report.dropped += 1
            continue
        task = asyncio.create_task(fire(n, scheduled))
        tasks.add(task)
        task.add_done_callback(finished)
    # The window lasts `duration` even when the last arrival came earlier.
    remaining = start + duration - clock()
    if remaining > 0:
        await asyncio.sleep(remaining)
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=drain_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return report


# -- recording ----------------------------------------------------------------------------


@dataclass
class OperationStats:
    latencies: list[float] = field(default_factory=list)  # seconds, from the scheduled time
    outcomes: Counter[str] = field(default_factory=Counter)  # "200", "503", "error:Timeout"

    @property
    def count(self) -> int:
        return sum(self.outcomes.values())

    @property
    def ok(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if outcome[:1] in "23")


class Recorder:
    """Latency and outcome per operation; latencies only of answered requests."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.operations: dict[str, OperationStats] = {}

    def record(self, operation: str, scheduled: float, outcome: str) -> None:
        stats = self.operations.setdefault(operation, OperationStats())
        stats.outcomes[outcome] += 1
        if not outcome.startswith("error:"):
            stats.latencies.append(self.clock() - scheduled)

    def summary(self, duration: float) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for name in sorted(self.operations):
            stats = self.operations[name]
            rows[name] = {
                "count": stats.count,
                "ok": stats.ok,
                "per_s": round(stats.count / duration, 2),
                "p50_ms": _ms(percentile(stats.latencies, 0.50)),
                "p90_ms": _ms(percentile(stats.latencies, 0.90)),
                "p99_ms": _ms(percentile(stats.latencies, 0.99)),
                "max_ms": _ms(max(stats.latencies, default=math.nan)),
                "failures": {k: v for k, v in sorted(stats.outcomes.items()) if k[:1] not in "23"},
            }
        return rows


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 2)


# -- the shop ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadConfig:
    base_url: str
    rate: float
    duration: float
    users: int = 50
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    payments: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PAYMENTS))
    seed: int | None = None
    connections: int = 256
    timeout: float = 30.0
    poll_orders: bool = True  # a checkout polls its order until it is final
    max_in_flight: int = 10_000
    drain_timeout: float = 60.0


@dataclass
class Order:
    id: str
    shopper: int
    status: str = "PENDING"
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def seconds_to_final(self) -> float | None:
        if self.created_at is None or self.updated_at is None or self.status not in FINAL:
            return None
        return (self.updated_at - self.created_at).total_seconds()

    def update(self, document: dict[str, Any]) -> None:
        self.status = str(document.get("status", self.status))
        self.created_at = _timestamp(document.get("created_at")) or self.created_at
        self.updated_at = _timestamp(document.get("updated_at")) or self.updated_at


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class SetupError(RuntimeError):
    """The platform could not be prepared for a run (no products, pool not created…)."""


class Shop:
    """The platform seen through its public API, and the journeys a load run drives."""

    def __init__(
        self, session: aiohttp.ClientSession, config: LoadConfig, recorder: Recorder
    ) -> None:
        self.session = session
        self.config = config
        self.recorder = recorder
        self.random = random.Random(config.seed)  # a workload, not a secret
        self.run_id = uuid.uuid4().hex[:8]
        self.products: list[dict[str, Any]] = []
        self.words: list[str] = []
        self.categories: list[str] = []
        self.shoppers: list[dict[str, str]] = []  # email and access token
        self.orders: list[Order] = []
        self._registered = 0

    # -- set-up (not measured) -------------------------------------------------------------

    async def prepare(self) -> None:
        cursor: str | None = None
        while len(self.products) < 1000:
            params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
            async with self.session.get("/api/v1/products", params=params) as answer:
                if answer.status != 200:
                    raise SetupError(f"GET /api/v1/products answered {answer.status}")
                page = await answer.json(loads=orjson.loads)
            self.products.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if not self.products:
            raise SetupError("the catalog is empty (run `mercato seed`)")
        self.words = sorted({w.lower() for p in self.products for w in p["name"].split()[:2]})
        self.categories = sorted({str(p["category"]) for p in self.products if p.get("category")})
        limit = asyncio.Semaphore(4)  # argon2 is memory-hard: a few at a time

        async def one(index: int) -> dict[str, str]:
            async with limit:
                email = f"load-{self.run_id}-{index}@example.com"
                await self._register(email)
                return {"email": email, "token": await self._login(email)}

        self.shoppers = list(await asyncio.gather(*(one(i) for i in range(self.config.users))))

    async def _register(self, email: str) -> int:
        body = {"email": email, "password": PASSWORD, "name": "Load Shopper"}
        async with self.session.post("/api/v1/auth/register", json=body) as answer:
            await answer.read()
            if answer.status not in (201, 409):
                raise SetupError(f"registering {email}: HTTP {answer.status}")
            return answer.status

    async def _login(self, email: str) -> str:
        body = {"email": email, "password": PASSWORD}
        async with self.session.post("/api/v1/auth/token", json=body) as answer:
            if answer.status != 200:
                raise SetupError(f"logging {email} in: HTTP {answer.status}")
            return str((await answer.json(loads=orjson.loads))["access_token"])

    # -- journeys (measured) ---------------------------------------------------------------

    def pick(self, weights: dict[str, float]) -> str:
        names = list(weights)
        return self.random.choices(names, weights=[weights[n] for n in names])[0]

    async def arrive(self, n: int, scheduled: float) -> None:
        """Arrival n: one step of a shopper's visit, drawn from the mix."""
        operation = self.pick(self.config.mix)
        shopper = n % len(self.shoppers)
        journey = {
            "browse": self.browse,
            "product": self.product_page,
            "search": self.search,
            "login": self.login,
            "register": self.register,
            "checkout": self.checkout,
        }[operation]
        await journey(shopper, scheduled)

    def _auth(self, shopper: int) -> dict[str, str]:
        # Shoppers browse logged in: the gateway's rate limit is per user for them, per
        # address otherwise (and every arrival here comes from one address).
        return {"Authorization": f"Bearer {self.shoppers[shopper]['token']}"}

    async def _call(
        self,
        operation: str,
        scheduled: float,
        method: str,
        path: str,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        try:
            async with self.session.request(method, path, **kwargs) as answer:
                body = await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as error:
            self.recorder.record(operation, scheduled, f"error:{type(error).__name__}")
            return 0, None
        self.recorder.record(operation, scheduled, str(status))
        try:
            return status, orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return status, None

    async def browse(self, shopper: int, scheduled: float) -> None:
        params = {"limit": "20"}
        if self.categories and self.random.random() < 0.5:
            params["category"] = self.random.choice(self.categories)
        await self._call(
            "browse", scheduled, "GET", "/api/v1/products", params=params,
            headers=self._auth(shopper),
        )  # fmt: skip

    async def product_page(self, shopper: int, scheduled: float) -> None:
        product = self.random.choice(self.products)
        await self._call(
            "product", scheduled, "GET", f"/api/v1/products/{product['id']}",
            headers=self._auth(shopper),
        )  # fmt: skip

    async def search(self, shopper: int, scheduled: float) -> None:
        await self._call(
            "search", scheduled, "GET", "/api/v1/products",
            params={"q": self.random.choice(self.words), "limit": "20"},
            headers=self._auth(shopper),
        )  # fmt: skip

    async def login(self, shopper: int, scheduled: float) -> None:
        await self._call(
            "login", scheduled, "POST", "/api/v1/auth/token",
            json={"email": self.shoppers[shopper]["email"], "password": PASSWORD},
        )  # fmt: skip

    async def register(self, shopper: int, scheduled: float) -> None:
        self._registered += 1
        email = f"load-{self.run_id}-new-{self._registered}@example.com"
        await self._call(
            "register", scheduled, "POST", "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "name": "New Shopper"},
        )  # fmt: skip

    async def checkout(self, shopper: int, scheduled: float) -> None:
        lines = self.random.sample(self.products, k=min(len(self.products), 1 + (shopper % 2)))
        status, document = await self._call(
            "place_order", scheduled, "POST", "/api/v1/orders",
            json={
                "items": [{"product_id": p["id"], "quantity": 1} for p in lines],
                "payment_token": self.pick(self.config.payments),
            },
            headers={**self._auth(shopper), "Idempotency-Key": uuid.uuid4().hex},
        )  # fmt: skip
        if status != 202 or not isinstance(document, dict):
            return
        order = Order(id=str(document["id"]), shopper=shopper)
        order.update(document)
        self.orders.append(order)
        if self.config.poll_orders:
            await self.poll(order)

    async def poll(self, order: Order, *, budget: float = 30.0) -> None:
        """Ask for the order until it is final, as a storefront's order page does."""
        wait, deadline = 0.1, time.monotonic() + budget
        while order.status not in FINAL and time.monotonic() < deadline:
            await asyncio.sleep(wait)
            wait = min(1.0, wait * 1.5)
            status, document = await self._call(
                "order_status", self.recorder.clock(), "GET", f"/api/v1/orders/{order.id}",
                headers=self._auth(order.shopper),
            )  # fmt: skip
            if status == 200 and isinstance(document, dict):
                order.update(document)

    async def settle(self, *, budget: float = 60.0) -> None:
        """Fetch every order still PENDING until it is final or `budget` runs out (unmeasured)."""
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            pending = [o for o in self.orders if o.status not in FINAL]
            if not pending:
                return
            for order in pending:
                async with self.session.get(
                    f"/api/v1/orders/{order.id}", headers=self._auth(order.shopper)
                ) as answer:
                    if answer.status == 200:
                        order.update(await answer.json(loads=orjson.loads))
            await asyncio.sleep(0.5)


def order_summary(orders: list[Order], duration: float) -> dict[str, Any]:
    statuses = Counter(order.status for order in orders)
    to_confirmed = [
        seconds
        for order in orders
        if order.status == "CONFIRMED" and (seconds := order.seconds_to_final) is not None
    ]
    return {
        "placed": len(orders),
        "statuses": dict(sorted(statuses.items())),
        "confirmed": statuses["CONFIRMED"],
        "confirmed_per_s": round(statuses["CONFIRMED"] / duration, 2),
        "to_confirmed_p50_ms": _ms(percentile(to_confirmed, 0.50)),
        "to_confirmed_p99_ms": _ms(percentile(to_confirmed, 0.99)),
    }


async def run_load(
    config: LoadConfig,
    *,
    on_window: Callable[[str], Awaitable[None] | None] | None = None,
) -> dict[str, Any]:
    """Prepare the pool, run the open loop, settle the orders; the report as a dict.

    `on_window("start")` / `on_window("end")` are called right around the measured window
    (the benchmarks read CPU counters there)."""
    recorder = Recorder()
    connector = aiohttp.TCPConnector(limit=config.connections, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=config.timeout)
    async with aiohttp.ClientSession(
        base_url=config.base_url, connector=connector, timeout=timeout,
        json_serialize=lambda value: orjson.dumps(value).decode(),
    ) as session:  # fmt: skip
        shop = Shop(session, config, recorder)
        await shop.prepare()
        if on_window is not None:
            await _maybe_await(on_window("start"))
        started = time.perf_counter()
        schedule = await open_loop(
            config.rate, config.duration, shop.arrive,
            max_in_flight=config.max_in_flight, drain_timeout=config.drain_timeout,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        await shop.settle()
        if on_window is not None:
            await _maybe_await(on_window("end"))
    return {
        "base_url": config.base_url,
        "offered_rate_per_s": config.rate,
        "duration_s": config.duration,
        "elapsed_s": round(elapsed, 2),
        "users": config.users,
        "arrivals": schedule.scheduled,
        "dropped": schedule.dropped,
        "max_start_lag_ms": round(schedule.max_start_lag_s * 1000, 2),
        "crashed": schedule.crashed,
        **({"last_crash": schedule.last_crash} if schedule.crashed else {}),
        "operations": recorder.summary(config.duration),
        "orders": order_summary(shop.orders, config.duration),
    }


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if value is not None:
        await value


def render(report: dict[str, Any]) -> str:
    lines = [
        f"offered {report['offered_rate_per_s']}/s for {report['duration_s']}s "
        f"({report['arrivals']} arrivals, {report['dropped']} dropped, generator lag max "
        f"{report['max_start_lag_ms']} ms) against {report['base_url']}",
        "latency is counted from each arrival's scheduled time (open model)",
        "",
        f"{'operation':<14}{'count':>7}{'ok':>7}{'per s':>8}{'p50 ms':>9}{'p90 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}  failures",
    ]
    for name, row in report["operations"].items():
        failures = ", ".join(f"{k} x{v}" for k, v in row["failures"].items()) or "-"
        cells = [_cell(row[key]) for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]
        lines.append(
            f"{name:<14}{row['count']:>7}{row['ok']:>7}{row['per_s']:>8}"
            + "".join(f"{cell:>9}" for cell in cells)
            + f"  {failures}"
        )
    if report.get("crashed"):
        lines.append(f"{report['crashed']} journeys raised; the last: {report['last_crash']}")
    orders = report["orders"]
    statuses = ", ".join(f"{k} {v}" for k, v in orders["statuses"].items()) or "none"
    lines += [
        "",
        f"orders placed {orders['placed']} ({statuses})",
        f"confirmed orders/s {orders['confirmed_per_s']}; time to CONFIRMED p50 "
        f"{_cell(orders['to_confirmed_p50_ms'])} ms, p99 {_cell(orders['to_confirmed_p99_ms'])} ms "
        "(the order's own created_at → updated_at)",
    ]
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def parse_mix(spec: str, known: dict[str, float]) -> dict[str, float]:
    """`browse=5,checkout=1` → weights; names must be known, weights non-negative."""
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name not in known:
            raise ValueError(f"{item!r}: use NAME=WEIGHT with NAME in {', '.join(known)}")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"{item!r}: the weight is not a number") from None
        if weight < 0 or not math.isfinite(weight):
            raise ValueError(f"{item!r}: the weight must be a finite number ≥ 0")
        weights[name] = weight
    if not weights or sum(weights.values()) <= 0:
        raise ValueError("the mix needs at least one positive weight")
    return weights


# -- the command ------------------------------------------------------------------------------


def gateway_url(data: DataDir) -> str | None:
    """The gateway of the platform running on `data`, or None."""
    state = data.read_state()
    if state is None:
        return None
    for instance in state.get("instances", []):
        if instance.get("service") == "gateway":
            return str(instance["url"])
    return None


def main(args: argparse.Namespace, data: DataDir) -> int:
    base = args.base_url or gateway_url(data)
    if not base:
        print(f"no platform is running on {data.root}; start one (`mercato up`) or pass "
              "--base-url", file=sys.stderr)  # fmt: skip
        return 1
    if args.rate <= 0 or args.duration <= 0 or args.users < 1:
        print("--rate and --duration must be positive and --users at least 1", file=sys.stderr)
        return 2
    try:
        mix = parse_mix(args.mix, DEFAULT_MIX) if args.mix else dict(DEFAULT_MIX)
    except ValueError as error:
        print(f"--mix: {error}", file=sys.stderr)
        return 2
    config = LoadConfig(
        base_url=base.rstrip("/"), rate=args.rate, duration=args.duration, users=args.users,
        mix=mix, seed=args.seed,
    )  # fmt: skip
    print(f"signing up {config.users} shoppers (not measured), then {config.rate:g}/s for "
          f"{config.duration:g}s against {config.base_url} …", file=sys.stderr)  # fmt: skip
    try:
        report = asyncio.run(run_load(config))
    except SetupError as error:
        print(f"mercato load: {error}", file=sys.stderr)
        return 1
    except aiohttp.ClientError as error:
        print(f"mercato load: cannot reach {base}: {error}", file=sys.stderr)
        return 1
    print(orjson.dumps(report).decode() if args.json else render(report))
    return 0
