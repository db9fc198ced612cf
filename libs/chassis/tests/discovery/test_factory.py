import pytest

from chassis.discovery import (
    InMemoryRegistry,
    InvalidSpecError,
    KubernetesDnsRegistry,
    NatsKvRegistry,
    StaticRegistry,
    registry_from_url,
)


def test_nats_url_builds_an_unstarted_kv_registry_with_defaults() -> None:
    registry = registry_from_url("nats://127.0.0.1:4222")
    assert isinstance(registry, NatsKvRegistry)
    assert registry.servers == ["nats://127.0.0.1:4222"]
    assert (registry.bucket, registry.ttl) == ("mercato_registry", 10.0)
    assert registry.heartbeat_interval == pytest.approx(10 / 3)


def test_nats_url_takes_several_servers_and_options() -> None:
    registry = registry_from_url("nats://a:4222,tls://b:4222?bucket=reg&ttl=2&heartbeat=0.5")
    assert isinstance(registry, NatsKvRegistry)
    assert registry.servers == ["nats://a:4222", "tls://b:4222"]
    assert (registry.bucket, registry.ttl, registry.heartbeat_interval) == ("reg", 2.0, 0.5)


async def test_static_kubernetes_and_memory_urls() -> None:
    static = registry_from_url("static:catalog=http://127.0.0.1:8001")
    assert isinstance(static, StaticRegistry)
    assert [i.url for i in await static.instances("catalog")] == ["http://127.0.0.1:8001"]

    k8s = registry_from_url("kubernetes://shop?port=8000")
    assert isinstance(k8s, KubernetesDnsRegistry)
    assert [i.url for i in await k8s.instances("orders")] == [
        "http://orders.shop.svc.cluster.local:8000"
    ]
    default = registry_from_url("k8s://?pattern={service}.{namespace}")
    assert isinstance(default, KubernetesDnsRegistry)
    assert (await default.instances("orders"))[0].host == "orders.default"

    assert isinstance(registry_from_url("memory://"), InMemoryRegistry)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost", "no scheme"),
        ("consul://localhost", "unknown registry scheme"),
        ("nats://h:4222?bukket=x", "unknown option"),
        ("nats://h:4222?ttl=soon", "not a number"),
        ("nats://h:4222?ttl=3&heartbeat=3", "heartbeat_interval"),
        ("nats://h:4222,http://x:1", "not a nats://"),
        ("nats://h:4222?bucket=a.b", "bucket name"),
        ("kubernetes://shop/extra", "kubernetes://<namespace>"),
        ("kubernetes://shop?port=8.5", "integer"),
        ("static:catalog", "expected 'service=url"),
    ],
)
def test_bad_urls_fail_clearly(url: str, message: str) -> None:
    with pytest.raises(InvalidSpecError, match=message):
        registry_from_url(url)
