"""One contract for every registry that accepts registrations: the fake and NATS KV."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chassis._embedded_nats import EmbeddedNatsServer
from chassis.discovery import (
    InMemoryRegistry,
    NatsKvRegistry,
    Registry,
    RegistryChange,
    ServiceInstance,
)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path / "js")
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.integration)])
async def registry(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Registry]:
    made: Registry
    if request.param == "memory":
        made = InMemoryRegistry()
    else:
        server = request.getfixturevalue("nats_server")
        made = NatsKvRegistry(server.url)
    await made.start()
    yield made
    await made.close()


def instance(service: str, instance_id: str, *, version: str = "1") -> ServiceInstance:
    return ServiceInstance(
        service=service, instance_id=instance_id, host="127.0.0.1", port=8001, version=version
    )


async def test_registered_instances_are_found_by_service(registry: Registry) -> None:
    await registry.register(instance("catalog", "c2"))
    await registry.register(instance("catalog", "c1"))
    await registry.register(instance("orders", "o1"))
    assert [i.instance_id for i in await registry.instances("catalog")] == ["c1", "c2"]
    assert [i.instance_id for i in await registry.instances("orders")] == ["o1"]
    assert await registry.instances("payments") == []
    assert [(i.service, i.instance_id) for i in await registry.all_instances()] == [
        ("catalog", "c1"),
        ("catalog", "c2"),
        ("orders", "o1"),
    ]


async def test_registering_again_updates_the_instance(registry: Registry) -> None:
    await registry.register(instance("catalog", "c1", version="1"))
    await registry.register(instance("catalog", "c1", version="2"))
    assert [i.version for i in await registry.instances("catalog")] == ["2"]


async def test_deregister_removes_and_ignores_unknown_ids(registry: Registry) -> None:
    await registry.register(instance("catalog", "c1"))
    await registry.register(instance("catalog", "odd id/é.1"))
    await registry.deregister("c1")
    await registry.deregister("never-registered")
    assert [i.instance_id for i in await registry.instances("catalog")] == ["odd id/é.1"]
    await registry.deregister("odd id/é.1")
    assert await registry.all_instances() == []


async def test_listeners_hear_of_arrivals_and_departures(registry: Registry) -> None:
    changes: list[RegistryChange] = []
    unsubscribe = registry.subscribe(changes.append)
    await registry.register(instance("catalog", "c1"))
    await registry.register(instance("catalog", "c1", version="2"))  # an update, not a change
    await registry.deregister("c1")
    unsubscribe()
    await registry.register(instance("catalog", "c2"))
    assert [(c.kind, c.instance.instance_id) for c in changes] == [
        ("added", "c1"),
        ("removed", "c1"),
    ]
