"""A registry fixed by configuration: instances listed in a settings string."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from chassis.discovery._instance import ServiceInstance, UtcClock, utc_now
from chassis.discovery._registry import ChangeListener, Unsubscribe
from chassis.discovery.errors import InvalidInstanceError, InvalidSpecError

__all__ = ["StaticRegistry", "parse_static_spec"]


def parse_static_spec(spec: str, *, clock: UtcClock = utc_now) -> list[ServiceInstance]:
    """Parse `catalog=http://127.0.0.1:8001,http://127.0.0.1:8002;identity=127.0.0.1:8101`.

    Services are separated by `;`, their URLs by `,`; a URL is `http://host:port` or
    `host:port`. Each instance's id is its `host:port`. Raises InvalidSpecError, naming
    the faulty part, on anything else.
    """
    now = clock()
    instances: list[ServiceInstance] = []
    seen_services: set[str] = set()
    for entry in (part.strip() for part in spec.split(";")):
        if not entry:
            continue  # tolerate a trailing or doubled ';'
        service, sep, urls = (s.strip() for s in entry.partition("="))
        if not sep or not service:
            raise InvalidSpecError(f"expected 'service=url[,url...]', got {entry!r}")
        if service in seen_services:
            raise InvalidSpecError(f"service {service!r} is listed twice")
        seen_services.add(service)
        addresses = [url.strip() for url in urls.split(",") if url.strip()]
        if not addresses:
            raise InvalidSpecError(f"service {service!r} has no URL")
        ids: set[str] = set()
        for url in addresses:
            host, port = _parse_address(url, service=service)
            instance_id = f"{host}:{port}"
            if instance_id in ids:
                raise InvalidSpecError(f"service {service!r} lists {url!r} twice")
            ids.add(instance_id)
            try:
                instance = ServiceInstance(
                    service=service,
                    instance_id=instance_id,
                    host=host,
                    port=port,
                    version="static",
                    started_at=now,
                    last_heartbeat=now,
                )
            except InvalidInstanceError as exc:
                raise InvalidSpecError(f"service {service!r}: {exc}") from exc
            instances.append(instance)
    return instances


def _parse_address(url: str, *, service: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http":
        raise InvalidSpecError(f"service {service!r}: only http:// URLs are supported: {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidSpecError(f"service {service!r}: URL must not have a path: {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidSpecError(f"service {service!r}: bad port in {url!r}") from exc
    if not parts.hostname or port is None:
        raise InvalidSpecError(f"service {service!r}: URL needs a host and a port: {url!r}")
    return parts.hostname, port


class StaticRegistry:
    """A `Registry` whose instances come from configuration and never change.

    `register` and `deregister` are no-ops: whoever writes the configuration decides
    where services are.
    """

    def __init__(self, instances: Iterable[ServiceInstance]) -> None:
        self._instances = sorted(instances, key=lambda inst: (inst.service, inst.instance_id))

    @classmethod
    def from_spec(cls, spec: str, *, clock: UtcClock = utc_now) -> StaticRegistry:
        """A registry from a spec string; see `parse_static_spec` for the syntax."""
        return cls(parse_static_spec(spec, clock=clock))

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def register(self, instance: ServiceInstance) -> None:
        pass

    async def deregister(self, instance_id: str) -> None:
        pass

    async def instances(self, service: str) -> list[ServiceInstance]:
        return [inst for inst in self._instances if inst.service == service]

    async def all_instances(self) -> list[ServiceInstance]:
        return list(self._instances)

    def subscribe(self, listener: ChangeListener) -> Unsubscribe:
        # Nothing ever changes, so there is nothing to tell the listener.
        return lambda: None
