from datetime import UTC, datetime

import pytest

from chassis.discovery import InvalidSpecError, KubernetesDnsRegistry, ServiceInstance

T0 = datetime(2025, 1, 1, tzinfo=UTC)


async def test_a_service_is_its_cluster_dns_name() -> None:
    registry = KubernetesDnsRegistry("shop", port=8000, clock=lambda: T0)
    [instance] = await registry.instances("catalog")
    assert instance.host == "catalog.shop.svc.cluster.local"
    assert instance.url == "http://catalog.shop.svc.cluster.local:8000"
    assert instance.service == "catalog"
    assert instance.last_heartbeat == T0
    assert await registry.instances("catalog") == [instance]


async def test_default_namespace_pattern_and_per_service_ports() -> None:
    registry = KubernetesDnsRegistry(
        service_ports={"inventory": 8080}, host_pattern="{service}-svc.{namespace}"
    )
    [inventory] = await registry.instances("inventory")
    [orders] = await registry.instances("orders")
    assert (inventory.host, inventory.port) == ("inventory-svc.default", 8080)
    assert (orders.host, orders.port) == ("orders-svc.default", 80)
    assert [i.service for i in await registry.all_instances()] == ["inventory", "orders"]


async def test_registration_is_left_to_kubernetes() -> None:
    registry = KubernetesDnsRegistry("default")
    await registry.start()
    own = ServiceInstance(service="catalog", instance_id="pod-1", host="10.1.2.3", port=8000)
    await registry.register(own)
    assert [i.host for i in await registry.instances("catalog")] == [
        "catalog.default.svc.cluster.local"
    ]
    await registry.deregister("pod-1")
    assert len(await registry.instances("catalog")) == 1
    await registry.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"namespace": "Bad_NS"}, "DNS label"),
        ({"namespace": "shop", "host_pattern": "{service}.{cluster}"}, "host pattern"),
        ({"namespace": "shop", "port": 0}, "port"),
        ({"namespace": "shop", "service_ports": {"catalog": 70000}}, "catalog port"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSpecError, match=message):
        KubernetesDnsRegistry(**kwargs)  # type: ignore[arg-type]
