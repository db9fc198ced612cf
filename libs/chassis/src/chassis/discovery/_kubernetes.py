"""Discovery by Kubernetes Service DNS: the cluster registers, kube-proxy balances."""

from __future__ import annotations

import re
from collections.abc import Mapping

from chassis.discovery._instance import ServiceInstance, UtcClock, utc_now
from chassis.discovery._registry import ChangeListener, Unsubscribe
from chassis.discovery.errors import InvalidSpecError

__all__ = ["DEFAULT_HOST_PATTERN", "KubernetesDnsRegistry"]

DEFAULT_HOST_PATTERN = "{service}.{namespace}.svc.cluster.local"

# RFC 1123 label, as Kubernetes requires of namespace names.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class KubernetesDnsRegistry:
    """A `Registry` that answers every lookup with the service's cluster DNS name.

    Kubernetes tracks pods behind each Service, so there is no registry traffic:
    `register`/`deregister` are no-ops and `instances(service)` is one virtual instance
    at `host_pattern` (placeholders `{service}` and `{namespace}`) on `port`, or on
    `service_ports[service]` when given. `all_instances` lists the services in
    `service_ports` plus those looked up so far, since DNS cannot be enumerated.
    """

    def __init__(
        self,
        namespace: str = "default",
        *,
        port: int = 80,
        service_ports: Mapping[str, int] | None = None,
        host_pattern: str = DEFAULT_HOST_PATTERN,
        clock: UtcClock = utc_now,
    ) -> None:
        if not _DNS_LABEL.match(namespace):
            raise InvalidSpecError(f"namespace {namespace!r} is not a valid DNS label")
        for name, value in {"port": port, **(service_ports or {})}.items():
            if not 0 < value < 65536:
                raise InvalidSpecError(f"{name} port must be in 1..65535, got {value}")
        try:
            host_pattern.format(service="svc", namespace=namespace)
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidSpecError(
                f"host pattern {host_pattern!r} may only use {{service}} and {{namespace}}"
            ) from exc
        self.namespace = namespace
        self.port = port
        self.host_pattern = host_pattern
        self._service_ports = dict(service_ports or {})
        self._clock = clock
        self._resolved: dict[str, ServiceInstance] = {}
        for service in self._service_ports:
            self._resolve(service)  # validates names and ports now, not on first call

    def host_for(self, service: str) -> str:
        """The DNS name of `service`'s Kubernetes Service."""
        return self.host_pattern.format(service=service, namespace=self.namespace)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def register(self, instance: ServiceInstance) -> None:
        pass

    async def deregister(self, instance_id: str) -> None:
        pass

    async def instances(self, service: str) -> list[ServiceInstance]:
        return [self._resolve(service)]

    async def all_instances(self) -> list[ServiceInstance]:
        return sorted(self._resolved.values(), key=lambda inst: inst.service)

    def subscribe(self, listener: ChangeListener) -> Unsubscribe:
        # The view never changes: the DNS name stays, pods come and go behind it.
        return lambda: None

    def _resolve(self, service: str) -> ServiceInstance:
        instance = self._resolved.get(service)
        if instance is None:
            host = self.host_for(service)
            now = self._clock()
            instance = ServiceInstance(
                service=service,
                instance_id=host,
                host=host,
                port=self._service_ports.get(service, self.port),
                version="kubernetes",
                started_at=now,
                last_heartbeat=now,
            )
            self._resolved[service] = instance
        return instance
