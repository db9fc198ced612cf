"""NatsKvRegistry against a real nats-server: resolving, expiry, broker restarts."""

import asyncio
import functools
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import KeyValueConfig

from chassis._embedded_nats import EmbeddedNatsServer, free_port
from chassis.discovery import (
    NatsKvRegistry,
    RegistryChange,
    RegistryUnavailableError,
    ServiceInstance,
    registry_key,
    utc_now,
)

pytestmark = pytest.mark.integration

BUCKET = "test_registry"

MakeRegistry = Callable[..., NatsKvRegistry]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path / "js")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def make_registry(server: EmbeddedNatsServer) -> AsyncIterator[MakeRegistry]:
    made: list[NatsKvRegistry] = []

    def make(**options: Any) -> NatsKvRegistry:
        options = {"bucket": BUCKET, "ttl": 2.0, "reconnect_time_wait": 0.1, **options}
        registry = NatsKvRegistry(server.url, **options)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        await registry.close()


async def started(make: MakeRegistry, **options: Any) -> NatsKvRegistry:
    registry = make(**options)
    await registry.start()
    return registry


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 5.0) -> float:
    """Seconds until `check()` holds; fails the test after `timeout`."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def ids(registry: NatsKvRegistry, service: str = "catalog") -> list[str]:
    return [i.instance_id for i in await registry.instances(service)]


def instance(instance_id: str, service: str = "catalog") -> ServiceInstance:
    return ServiceInstance(service=service, instance_id=instance_id, host="127.0.0.1", port=8001)


class FrozenUtcClock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


async def test_resolver_sees_instances_and_answers_from_its_cache(
    make_registry: MakeRegistry, server: EmbeddedNatsServer
) -> None:
    registrar = await started(make_registry)
    resolver = await started(make_registry)
    await registrar.register(instance("c1"))
    await eventually(lambda: _has(resolver, "c1"))
    [seen] = await resolver.instances("catalog")
    assert seen.url == "http://127.0.0.1:8001"

    await asyncio.to_thread(server.stop)
    # No broker: the lookup can only be answered from the local cache.
    assert await ids(resolver) == ["c1"]
    await asyncio.sleep(2.5)  # longer than the TTL: an unreachable broker must not empty it
    assert await ids(resolver) == ["c1"]


async def test_deregister_and_close_remove_instances_everywhere(
    make_registry: MakeRegistry,
) -> None:
    registrar = await started(make_registry)
    resolver = await started(make_registry)
    await registrar.register(instance("c1"))
    await registrar.register(instance("c2"))
    await eventually(lambda: _has(resolver, "c1", "c2"))
    await registrar.deregister("c1")
    await eventually(lambda: _has(resolver, "c2"))
    await registrar.close()
    await eventually(lambda: _has(resolver))
    fresh = await started(make_registry)
    assert await fresh.all_instances() == []


async def test_a_crashed_instance_vanishes_within_about_a_ttl(
    make_registry: MakeRegistry,
) -> None:
    registrar = await started(make_registry, ttl=1.0)
    resolver = await started(make_registry, ttl=1.0)
    removed = asyncio.Event()

    def on_change(change: RegistryChange) -> None:
        if change.kind == "removed":
            removed.set()

    resolver.subscribe(on_change)
    await registrar.register(instance("c1"))
    await eventually(lambda: _has(resolver, "c1"))
    await asyncio.sleep(1.5)  # heartbeats keep it alive past one TTL
    assert await ids(resolver) == ["c1"]

    crashed_at = time.monotonic()
    await registrar.close(deregister=False)  # heartbeats stop, nothing is deleted
    # The bucket has limit markers, so the watcher hears of the expiry without a lookup.
    await asyncio.wait_for(removed.wait(), timeout=3.0)
    assert time.monotonic() - crashed_at < 2.5
    assert await ids(resolver) == []


async def test_without_expiry_markers_the_cache_still_drops_a_silent_instance(
    make_registry: MakeRegistry, server: EmbeddedNatsServer
) -> None:
    # A bucket as nats-server < 2.11 (or another client) would create it: no markers.
    nc = await nats.connect(server.url)
    await nc.jetstream().create_key_value(KeyValueConfig(bucket=BUCKET, ttl=1.0))
    await nc.close()

    clock = FrozenUtcClock()
    registrar = await started(make_registry, ttl=1.0)
    resolver = await started(make_registry, ttl=1.0, clock=clock)
    await registrar.register(instance("c1"))
    await eventually(lambda: _has(resolver, "c1"))
    await registrar.close(deregister=False)

    await asyncio.sleep(2.0)  # the server has dropped the entry by now, and said nothing
    fresh = await started(make_registry, ttl=1.0)
    assert await fresh.all_instances() == []
    assert await ids(resolver) == ["c1"]  # frozen clock: only an event could remove it
    clock.now += timedelta(seconds=2)
    assert await ids(resolver) == []


async def test_broker_restart_resumes_heartbeats_and_watching(
    make_registry: MakeRegistry, server: EmbeddedNatsServer
) -> None:
    registrar = await started(make_registry)
    resolver = await started(make_registry)
    await registrar.register(instance("c1"))
    await eventually(lambda: _has(resolver, "c1"))

    await asyncio.to_thread(server.restart)
    restarted_at = utc_now()

    async def heartbeat_after_restart() -> bool:
        return any(i.last_heartbeat > restarted_at for i in await resolver.instances("catalog"))

    await eventually(heartbeat_after_restart)
    await registrar.register(instance("c2"))
    await eventually(lambda: _has(resolver, "c1", "c2"))
    late = await started(make_registry)
    await late.register(instance("o1", service="orders"))
    await eventually(lambda: _has(resolver, "o1", service="orders"))


async def test_broker_back_without_its_store_gets_the_bucket_and_entries_again(
    make_registry: MakeRegistry, server: EmbeddedNatsServer
) -> None:
    registrar = await started(make_registry)
    resolver = await started(make_registry)
    await registrar.register(instance("c1"))
    await eventually(lambda: _has(resolver, "c1"))

    await asyncio.to_thread(server.stop)
    shutil.rmtree(server.store_dir)
    await asyncio.to_thread(server.start)

    fresh = make_registry()
    await eventually(lambda: _starts(fresh))
    await eventually(lambda: _has(fresh, "c1"))  # re-put into a recreated bucket
    await eventually(lambda: _has(resolver, "c1"))
    await registrar.register(instance("c2"))
    await eventually(lambda: _has(resolver, "c1", "c2"))


async def test_several_processes_may_create_the_bucket_at_once(
    make_registry: MakeRegistry,
) -> None:
    registries = [make_registry() for _ in range(4)]
    await asyncio.gather(*(registry.start() for registry in registries))
    await registries[0].register(instance("c1"))
    for registry in registries[1:]:
        await eventually(functools.partial(_has, registry, "c1"))


async def test_entries_live_under_one_escaped_key_per_instance(
    make_registry: MakeRegistry, server: EmbeddedNatsServer
) -> None:
    registrar = await started(make_registry)
    await registrar.register(instance("pod 1.a/é"))
    nc = await nats.connect(server.url)
    try:
        kv = await nc.jetstream().key_value(BUCKET)
        assert await kv.keys() == ["catalog.pod=201=2Ea=2F=C3=A9"]
        entry = await kv.get(registry_key("catalog", "pod 1.a/é"))
        assert entry.value is not None
        assert ServiceInstance.from_json(entry.value).instance_id == "pod 1.a/é"
    finally:
        await nc.close()


async def _has(registry: NatsKvRegistry, *expected: str, service: str = "catalog") -> bool:
    return await ids(registry, service) == list(expected)


async def _starts(registry: NatsKvRegistry) -> bool:
    try:
        await registry.start()
    except RegistryUnavailableError:
        return False
    return True


async def test_start_without_a_broker_fails_cleanly() -> None:
    registry = NatsKvRegistry(f"nats://127.0.0.1:{free_port()}", start_timeout=0.5)
    with pytest.raises(RegistryUnavailableError, match="cannot start"):
        await registry.start()
    with pytest.raises(RegistryUnavailableError, match="before start"):
        await registry.register(instance("c1"))
