from datetime import UTC, datetime, timedelta, timezone

import pytest

from chassis.discovery import InvalidInstanceError, ServiceInstance

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def make(**overrides: object) -> ServiceInstance:
    fields: dict[str, object] = {
        "service": "catalog",
        "instance_id": "catalog-1",
        "host": "127.0.0.1",
        "port": 8001,
        "started_at": T0,
        "last_heartbeat": T0,
    }
    fields.update(overrides)
    return ServiceInstance(**fields)  # type: ignore[arg-type]


def test_url_is_http_on_the_main_port() -> None:
    assert make().url == "http://127.0.0.1:8001"
    assert make(host="::1").url == "http://[::1]:8001"


def test_json_round_trip_keeps_every_field() -> None:
    instance = make(
        ports={"grpc": 50051}, version="1.2.3", metadata={"zone": "a"}, instance_id="c.1/x"
    )
    assert ServiceInstance.from_json(instance.to_json()) == instance
    assert ServiceInstance.from_json(instance.to_json().decode()).ports == {"grpc": 50051}


def test_times_are_normalised_to_utc_and_naive_ones_refused() -> None:
    plus_two = timezone(timedelta(hours=2))
    instance = make(started_at=T0.astimezone(plus_two))
    assert instance.started_at.tzinfo is UTC
    assert instance.started_at == T0
    with pytest.raises(InvalidInstanceError, match="timezone-aware"):
        make(last_heartbeat=datetime(2025, 1, 1))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": True}, "port"),
        ({"version": 2}, "version"),
        ({"ports": {"grpc": -1}}, "grpc"),
        ({"service": "bad.name"}, "service name"),
        ({"service": ""}, "service name"),
        ({"instance_id": ""}, "instance_id"),
        ({"host": "a b"}, "host"),
    ],
)
def test_malformed_instances_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInstanceError, match=message):
        make(**overrides)


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"service": "catalog"}', b'{"service": "c", "instance_id": "i", '
     b'"host": "h", "port": "80", "started_at": "2025-01-01T00:00:00+00:00", '
     b'"last_heartbeat": "2025-01-01T00:00:00+00:00"}'],
)  # fmt: skip
def test_malformed_json_raises_invalid_instance(raw: bytes) -> None:
    with pytest.raises(InvalidInstanceError):
        ServiceInstance.from_json(raw)


def test_instances_are_hashable_and_immutable() -> None:
    instance = make(ports={"grpc": 1})
    assert instance in {instance}
    with pytest.raises(AttributeError):
        instance.port = 1  # type: ignore[misc]


def test_heartbeat_returns_a_refreshed_copy() -> None:
    later = T0 + timedelta(seconds=3)
    refreshed = make().heartbeat(later)
    assert refreshed.last_heartbeat == later
    assert refreshed.started_at == T0
