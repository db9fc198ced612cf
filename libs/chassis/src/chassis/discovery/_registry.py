"""The registry port: where instances announce themselves and callers look them up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog

from chassis.discovery._instance import ServiceInstance

__all__ = ["ChangeFeed", "ChangeListener", "Registry", "RegistryChange", "Unsubscribe"]


@dataclass(frozen=True, slots=True)
class RegistryChange:
    """An instance appeared in (`added`) or left (`removed`) the registry.

    Heartbeats that only refresh an instance are not changes.
    """

    kind: Literal["added", "removed"]
    instance: ServiceInstance


ChangeListener = Callable[[RegistryChange], None]
"""Called synchronously on every change; it must not block (schedule work instead)."""

Unsubscribe = Callable[[], None]


class Registry(Protocol):
    """Service registry: instances register themselves, callers resolve services.

    Lookups (`instances`, `all_instances`) read a local view and never wait on the
    network, so they are cheap enough to call on every request. Lists are sorted by
    `instance_id`, which must be unique across the registry (not just the service).
    """

    async def start(self) -> None:
        """Connect and load the current view; lookups are complete once this returns."""
        ...

    async def close(self) -> None:
        """Stop background work and release connections; idempotent."""
        ...

    async def register(self, instance: ServiceInstance) -> None:
        """Announce `instance` (and keep it alive, for backends with heartbeats)."""
        ...

    async def deregister(self, instance_id: str) -> None:
        """Withdraw an instance on graceful shutdown; unknown ids are ignored."""
        ...

    async def instances(self, service: str) -> list[ServiceInstance]:
        """The live instances of `service`, from the local view; [] if none."""
        ...

    async def all_instances(self) -> list[ServiceInstance]:
        """Every live instance known, sorted by service then instance id."""
        ...

    def subscribe(self, listener: ChangeListener) -> Unsubscribe:
        """Call `listener` on every change; the returned function stops that."""
        ...


class ChangeFeed:
    """Fans registry changes out to listeners; a failing listener never breaks the rest."""

    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []
        self._log = structlog.get_logger("chassis.discovery")

    def subscribe(self, listener: ChangeListener) -> Unsubscribe:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self, change: RegistryChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                self._log.exception(
                    "registry listener failed",
                    change=change.kind,
                    service=change.instance.service,
                    instance_id=change.instance.instance_id,
                )
