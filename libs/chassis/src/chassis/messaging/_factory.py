"""One setting picks the broker: a URL whose scheme names the adapter."""

from __future__ import annotations

from urllib.parse import urlsplit

from chassis.messaging._bus import MessageBus
from chassis.messaging._memory import InMemoryMessageBus
from chassis.messaging._nats import NatsJetStreamBus
from chassis.messaging._rabbitmq import RabbitMqBus

__all__ = ["bus_from_url"]


def bus_from_url(url: str, *, service: str) -> MessageBus:
    """Build the bus a URL names (not started: call `start()`).

    - `nats://host:4222[,nats://other:4222]` (or `tls://`): `NatsJetStreamBus`;
    - `amqp://user:password@host:5672/vhost` (or `amqps://`): `RabbitMqBus`;
    - `memory://`: `InMemoryMessageBus`.

    `service` names the connection on the broker, so operators can tell clients apart.
    """
    url = url.strip()
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("nats", "tls"):
        servers = [server.strip() for server in url.split(",") if server.strip()]
        for server in servers:
            parts = urlsplit(server)
            if parts.scheme not in ("nats", "tls") or not parts.hostname:
                raise ValueError(f"{server!r} in broker URL {url!r} is not a nats:// URL")
        return NatsJetStreamBus(servers, name=service)
    if scheme in ("amqp", "amqps"):
        if not urlsplit(url).hostname:
            raise ValueError(f"broker URL {_redacted(url)!r} has no host")
        return RabbitMqBus(url, name=service)
    if scheme == "memory":
        return InMemoryMessageBus()
    raise ValueError(
        f"unknown broker URL scheme {scheme!r} in {_redacted(url)!r}: "
        "use nats://, amqp:// or memory://"
    )


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
