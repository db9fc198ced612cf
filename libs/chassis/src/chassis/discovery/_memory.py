"""A registry in a dict: the fake for unit tests, and a single-process registry."""

from __future__ import annotations

import itertools

from chassis.discovery._cache import InstanceCache
from chassis.discovery._instance import ServiceInstance
from chassis.discovery._registry import ChangeFeed, ChangeListener, Unsubscribe

__all__ = ["InMemoryRegistry"]


class InMemoryRegistry:
    """A `Registry` held in memory: what is registered is visible at once, nothing expires."""

    def __init__(self, instances: list[ServiceInstance] | None = None) -> None:
        self._feed = ChangeFeed()
        self._cache = InstanceCache(feed=self._feed)
        self._revisions = itertools.count(1)
        for instance in instances or []:
            self._put(instance)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def register(self, instance: ServiceInstance) -> None:
        self._put(instance)

    async def deregister(self, instance_id: str) -> None:
        found = self._cache.find(instance_id)
        if found is not None:
            self._cache.delete(found[0], next(self._revisions))

    async def instances(self, service: str) -> list[ServiceInstance]:
        return self._cache.instances(service)

    async def all_instances(self) -> list[ServiceInstance]:
        return self._cache.all()

    def subscribe(self, listener: ChangeListener) -> Unsubscribe:
        return self._feed.subscribe(listener)

    def _put(self, instance: ServiceInstance) -> None:
        self._cache.put(instance.instance_id, instance, next(self._revisions))
