"""The local view of a registry that lookups read, kept current by a watcher."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from chassis.discovery._instance import ServiceInstance, UtcClock, utc_now
from chassis.discovery._registry import ChangeFeed, RegistryChange

__all__ = ["InstanceCache"]


@dataclass(slots=True)
class _Slot:
    instance: ServiceInstance | None  # None: deleted here, the watcher has not confirmed yet
    revision: int


class InstanceCache:
    """Instances by registry key, ordered by revision, expiring by heartbeat age.

    Updates carry the revision the backend gave them; an update older than what the cache
    holds is ignored, so a watcher replaying history cannot resurrect an instance that was
    deregistered locally. With a `ttl`, an instance whose `last_heartbeat` is older than
    `ttl` is dropped at lookup, even if no delete ever arrives (a crashed instance on a
    server that writes no expiry markers).
    """

    def __init__(
        self, *, feed: ChangeFeed, ttl: float | None = None, clock: UtcClock = utc_now
    ) -> None:
        self._feed = feed
        self._max_age = timedelta(seconds=ttl) if ttl is not None else None
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._frozen_at: datetime | None = None

    def put(self, key: str, instance: ServiceInstance, revision: int) -> None:
        """Record `instance` under `key` unless the cache already holds a newer revision."""
        slot = self._slots.get(key)
        if slot is not None and revision <= slot.revision:
            return
        self._slots[key] = _Slot(instance, revision)
        if slot is None or slot.instance is None:
            self._feed.publish(RegistryChange("added", instance))

    def delete(self, key: str, revision: int | None = None) -> None:
        """Forget `key`: at `revision` (from the watcher), or now (`None`, a local delete).

        A local delete leaves a tombstone at the current revision, so puts still in
        flight from the watcher are ignored until a newer one arrives.
        """
        slot = self._slots.get(key)
        if slot is None:
            return
        if revision is not None and revision <= slot.revision:
            return
        if revision is None:
            self._slots[key] = _Slot(None, slot.revision)
        else:
            del self._slots[key]
        if slot.instance is not None:
            self._feed.publish(RegistryChange("removed", slot.instance))

    def replace(self, entries: Mapping[str, tuple[ServiceInstance, int]]) -> None:
        """Swap the whole view for a fresh snapshot, announcing only what changed."""
        old = {key: slot.instance for key, slot in self._slots.items() if slot.instance}
        self._slots = {key: _Slot(inst, rev) for key, (inst, rev) in entries.items()}
        for key, instance in old.items():
            if key not in entries:
                self._feed.publish(RegistryChange("removed", instance))
        for key, (instance, _) in entries.items():
            if key not in old:
                self._feed.publish(RegistryChange("added", instance))

    def find(self, instance_id: str) -> tuple[str, ServiceInstance] | None:
        """The key and instance with this id, if the cache holds it."""
        for key, slot in self._slots.items():
            if slot.instance is not None and slot.instance.instance_id == instance_id:
                return key, slot.instance
        return None

    def instances(self, service: str) -> list[ServiceInstance]:
        return [inst for inst in self.all() if inst.service == service]

    def all(self) -> list[ServiceInstance]:
        self._expire()
        live = [slot.instance for slot in self._slots.values() if slot.instance is not None]
        return sorted(live, key=lambda inst: (inst.service, inst.instance_id))

    def suspend_expiry(self) -> None:
        """Stop ageing instances: while the backend is unreachable, no heartbeat can arrive,
        so the last known view beats an empty one."""
        if self._frozen_at is None:
            self._frozen_at = self._clock()

    def resume_expiry(self) -> None:
        self._frozen_at = None

    def _expire(self) -> None:
        if self._max_age is None:
            return
        now = self._frozen_at or self._clock()
        stale = [
            key
            for key, slot in self._slots.items()
            if slot.instance is not None and now - slot.instance.last_heartbeat > self._max_age
        ]
        for key in stale:
            instance = self._slots.pop(key).instance
            assert instance is not None
            self._feed.publish(RegistryChange("removed", instance))
