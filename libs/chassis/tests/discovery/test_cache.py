"""The local view behind NatsKvRegistry: revisions, heartbeat expiry, change events."""

from datetime import UTC, datetime, timedelta

from chassis.discovery import RegistryChange, ServiceInstance
from chassis.discovery._cache import InstanceCache
from chassis.discovery._registry import ChangeFeed

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class FakeUtcClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def instance(instance_id: str, *, at: datetime = T0, service: str = "catalog") -> ServiceInstance:
    return ServiceInstance(
        service=service,
        instance_id=instance_id,
        host="127.0.0.1",
        port=8001,
        started_at=T0,
        last_heartbeat=at,
    )


def make_cache(ttl: float | None = 10.0) -> tuple[InstanceCache, FakeUtcClock, list[str]]:
    feed = ChangeFeed()
    changes: list[str] = []

    def record(change: RegistryChange) -> None:
        changes.append(f"{change.kind} {change.instance.instance_id}")

    feed.subscribe(record)
    clock = FakeUtcClock()
    return InstanceCache(feed=feed, ttl=ttl, clock=clock), clock, changes


def test_older_revisions_never_overwrite_newer_ones() -> None:
    cache, _, changes = make_cache()
    cache.put("catalog.a", instance("a", at=T0 + timedelta(seconds=2)), 5)
    cache.put("catalog.a", instance("a"), 4)
    assert cache.instances("catalog")[0].last_heartbeat == T0 + timedelta(seconds=2)
    cache.delete("catalog.a", 3)  # a delete older than the put it would remove
    assert len(cache.instances("catalog")) == 1
    assert changes == ["added a"]


def test_a_local_delete_ignores_replayed_puts_until_a_newer_revision() -> None:
    cache, _, changes = make_cache()
    cache.put("catalog.a", instance("a"), 5)
    cache.delete("catalog.a")
    cache.put("catalog.a", instance("a"), 5)  # the watcher replays what we deleted
    assert cache.instances("catalog") == []
    cache.delete("catalog.a", 6)  # the watcher's own delete event
    cache.put("catalog.a", instance("a"), 7)  # registered again
    assert [i.instance_id for i in cache.instances("catalog")] == ["a"]
    assert changes == ["added a", "removed a", "added a"]


def test_instances_without_heartbeat_for_a_ttl_vanish_at_lookup() -> None:
    cache, clock, changes = make_cache(ttl=10)
    cache.put("catalog.a", instance("a"), 1)
    cache.put("catalog.b", instance("b"), 2)
    clock.advance(8)
    cache.put("catalog.b", instance("b", at=clock.now), 3)
    clock.advance(2)
    assert [i.instance_id for i in cache.all()] == ["a", "b"]  # exactly one TTL old: kept
    clock.advance(0.001)
    assert [i.instance_id for i in cache.all()] == ["b"]
    assert changes == ["added a", "added b", "removed a"]


def test_expiry_is_suspended_while_the_backend_is_unreachable() -> None:
    cache, clock, _ = make_cache(ttl=10)
    cache.put("catalog.a", instance("a"), 1)
    clock.advance(5)
    cache.suspend_expiry()
    clock.advance(60)
    assert [i.instance_id for i in cache.instances("catalog")] == ["a"]
    cache.resume_expiry()
    assert cache.instances("catalog") == []


def test_replace_announces_only_the_difference() -> None:
    cache, _, changes = make_cache()
    cache.put("catalog.a", instance("a"), 1)
    cache.put("catalog.b", instance("b"), 2)
    cache.replace(
        {"catalog.b": (instance("b"), 2), "orders.c": (instance("c", service="orders"), 3)}
    )
    assert [i.instance_id for i in cache.all()] == ["b", "c"]
    assert changes == ["added a", "added b", "removed a", "added c"]
    assert cache.find("c") == ("orders.c", instance("c", service="orders"))
    assert cache.find("a") is None


def test_a_failing_listener_does_not_stop_the_others() -> None:
    feed = ChangeFeed()
    seen: list[RegistryChange] = []

    def broken(change: RegistryChange) -> None:
        raise RuntimeError("boom")

    feed.subscribe(broken)
    unsubscribe = feed.subscribe(seen.append)
    cache = InstanceCache(feed=feed)
    cache.put("k", instance("a"), 1)
    unsubscribe()
    cache.put("k2", instance("b"), 2)
    assert [c.instance.instance_id for c in seen] == ["a"]
