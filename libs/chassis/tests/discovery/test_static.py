from datetime import UTC, datetime

import pytest

from chassis.discovery import InvalidSpecError, StaticRegistry, parse_static_spec

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SPEC = "catalog=http://127.0.0.1:8001,http://127.0.0.1:8002;identity=http://127.0.0.1:8101"


def test_parses_services_and_their_urls() -> None:
    instances = parse_static_spec(SPEC, clock=lambda: T0)
    assert [(i.service, i.instance_id, i.url) for i in instances] == [
        ("catalog", "127.0.0.1:8001", "http://127.0.0.1:8001"),
        ("catalog", "127.0.0.1:8002", "http://127.0.0.1:8002"),
        ("identity", "127.0.0.1:8101", "http://127.0.0.1:8101"),
    ]
    assert all(i.started_at == T0 and i.last_heartbeat == T0 for i in instances)


def test_tolerates_spaces_trailing_separators_and_bare_addresses() -> None:
    instances = parse_static_spec(" catalog = 10.0.0.1:80 , http://[::1]:81/ ; ; ")
    assert [(i.host, i.port) for i in instances] == [("10.0.0.1", 80), ("::1", 81)]
    assert parse_static_spec("") == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("catalog", "expected 'service=url"),
        ("=http://h:1", "expected 'service=url"),
        ("catalog=", "has no URL"),
        ("catalog=http://h", "needs a host and a port"),
        ("catalog=http://h:99999", "bad port"),
        ("catalog=http://h:x", "bad port"),
        ("catalog=https://h:1", "only http://"),
        ("catalog=http://h:1/api", "must not have a path"),
        ("catalog=h:1;catalog=h:2", "listed twice"),
        ("catalog=h:1,h:1", "lists 'h:1' twice"),
        ("bad.name=h:1", "service 'bad.name'"),
    ],
)
def test_bad_specs_fail_with_a_clear_message(spec: str, message: str) -> None:
    with pytest.raises(InvalidSpecError, match=message):
        parse_static_spec(spec)


async def test_static_registry_serves_the_spec_and_ignores_registration() -> None:
    registry = StaticRegistry.from_spec(SPEC)
    await registry.start()
    catalog = await registry.instances("catalog")
    assert [i.port for i in catalog] == [8001, 8002]
    assert await registry.instances("orders") == []
    await registry.register(catalog[0].heartbeat(T0))
    await registry.deregister(catalog[0].instance_id)
    assert await registry.instances("catalog") == catalog
    assert len(await registry.all_instances()) == 3
    registry.subscribe(lambda change: None)()
    await registry.close()
