"""ServiceClient against real HTTP servers: balancing, ejection, retries only when safe,
deadline propagation, breaker and bulkhead."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from chassis.discovery import InMemoryRegistry, ServiceInstance, utc_now
from chassis.http import ServiceClient, ServiceUnavailableError
from chassis.resilience import (
    DEADLINE_HEADER,
    CircuitBreakerConfig,
    Deadline,
    RetryPolicy,
    deadline_scope,
)


@dataclass
class Backend:
    name: str
    status: int = 200
    delay: float = 0.0
    hits: int = 0
    deadlines: list[str | None] = field(default_factory=list)
    server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.deadlines.append(request.headers.get(DEADLINE_HEADER))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.json_response({"from": self.name}, status=self.status)


@pytest.fixture
async def backends() -> AsyncIterator[list[Backend]]:
    made = [Backend(f"b{n}") for n in range(3)]
    for backend in made:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", backend.handle)
        backend.server = TestServer(app, host="127.0.0.1")
        await backend.server.start_server()
    yield made
    for backend in made:
        assert backend.server is not None
        await backend.server.close()


async def registry_of(backends: list[Backend]) -> InMemoryRegistry:
    registry = InMemoryRegistry()
    now = utc_now()
    for backend in backends:
        assert backend.server is not None
        await registry.register(ServiceInstance(service="svc", instance_id=backend.name,
            host="127.0.0.1", port=backend.server.port or 0, started_at=now, last_heartbeat=now))  # fmt: skip
    return registry


@pytest.fixture
async def client(backends: list[Backend]) -> AsyncIterator[ServiceClient]:
    made = ServiceClient(await registry_of(backends), timeout=2.0,
                         retry=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002))  # fmt: skip
    await made.start()
    yield made
    await made.close()


async def test_requests_spread_over_every_instance(
    client: ServiceClient, backends: list[Backend]
) -> None:
    for _ in range(60):
        assert (await client.request("svc", "GET", "/x")).status == 200
    assert all(b.hits > 5 for b in backends), [b.hits for b in backends]


async def test_a_failing_instance_is_ejected_and_get_retried_elsewhere(
    client: ServiceClient, backends: list[Backend]
) -> None:
    backends[0].status = 503
    answers = [await client.request("svc", "GET", "/x") for _ in range(60)]
    assert all(a.status == 200 for a in answers)  # retried on a healthy instance
    assert backends[0].hits <= 6  # five failures in a row eject it
    assert client.target("svc").balancer.is_ejected(
        next(i for i in await client.registry.instances("svc") if i.instance_id == "b0")
    )


async def test_posts_are_never_retried_without_an_idempotency_key(
    client: ServiceClient, backends: list[Backend]
) -> None:
    for backend in backends:
        backend.status = 503
    answer = await client.request("svc", "POST", "/orders", json={"a": 1})
    assert answer.status == 503  # passed on as it is, sent exactly once
    assert sum(b.hits for b in backends) == 1
    with pytest.raises(ServiceUnavailableError):
        await client.request("svc", "POST", "/orders", json={"a": 1}, idempotency_key="k-1")
    assert sum(b.hits for b in backends) == 1 + 3


async def test_the_callers_deadline_travels_and_bounds_the_wait(
    client: ServiceClient, backends: list[Backend]
) -> None:
    with deadline_scope(Deadline.after(1.5)):
        await client.request("svc", "GET", "/x")
    sent = [d for b in backends for d in b.deadlines if d is not None]
    assert len(sent) == 1 and 1000 < int(sent[0]) <= 1500
    for backend in backends:
        backend.delay = 1.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    with deadline_scope(Deadline.after(0.2)), pytest.raises(ServiceUnavailableError):
        await client.request("svc", "GET", "/slow")
    assert loop.time() - started < 0.6


async def test_an_open_breaker_fails_fast_without_calls(backends: list[Backend]) -> None:
    registry = await registry_of(backends)
    client = ServiceClient(
        registry,
        retry=RetryPolicy(max_attempts=1),
        breaker=CircuitBreakerConfig(
            minimum_number_of_calls=4, sliding_window_size=4, wait_duration_in_open_state=60
        ),
    )
    await client.start()
    try:
        for backend in backends:
            backend.status = 503
        for _ in range(4):
            with pytest.raises(ServiceUnavailableError):
                await client.request("svc", "GET", "/x")
        before = sum(b.hits for b in backends)
        with pytest.raises(ServiceUnavailableError, match="CircuitOpenError"):
            await client.request("svc", "GET", "/x")
        assert sum(b.hits for b in backends) == before
    finally:
        await client.close()


async def test_excess_concurrency_fails_fast_at_the_bulkhead(backends: list[Backend]) -> None:
    for backend in backends:
        backend.delay = 0.3
    client = ServiceClient(await registry_of(backends), max_concurrent=2,
                           retry=RetryPolicy(max_attempts=1))  # fmt: skip
    await client.start()
    try:
        results = await asyncio.gather(
            *(client.request("svc", "GET", "/x") for _ in range(4)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, ServiceUnavailableError)]
        assert len(failures) == 2 and all("BulkheadFullError" in str(f) for f in failures)
    finally:
        await client.close()


async def test_no_instances_is_service_unavailable() -> None:
    client = ServiceClient(InMemoryRegistry(), retry=RetryPolicy(max_attempts=2, base_delay=0.001))
    await client.start()
    try:
        with pytest.raises(ServiceUnavailableError, match="no instance"):
            await client.request("ghost", "GET", "/")
    finally:
        await client.close()
