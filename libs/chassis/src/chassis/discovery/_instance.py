"""One running copy of a service, as the registry knows it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from chassis.discovery.errors import InvalidInstanceError

__all__ = ["ServiceInstance", "UtcClock", "utc_now"]

UtcClock = Callable[[], datetime]
"""A source of timezone-aware UTC wall-clock time, injected wherever time is stamped."""

# Lowercase-friendly and free of `.`, so a service name is one token of a NATS KV key and
# a valid Kubernetes Service name prefix.
_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def _as_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInstanceError(f"{name} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


def _check_port(value: object, name: str) -> int:
    # bool is an int: refuse it explicitly so `port=True` is not port 1.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise InvalidInstanceError(f"{name} must be an integer in 1..65535, got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True, slots=True)
class ServiceInstance:
    """A service instance: where it listens, what it runs, when it was last heard of.

    `port` is the HTTP port; `ports` names extra ones (e.g. `{"grpc": 50051}`). Times are
    UTC; naive datetimes are refused. Mappings are copied, so the instance stays immutable
    in practice.
    """

    service: str
    instance_id: str
    host: str
    port: int
    ports: Mapping[str, int] = field(default_factory=dict, hash=False)
    version: str = "unknown"
    started_at: datetime = field(default_factory=utc_now)
    last_heartbeat: datetime = field(default_factory=utc_now)
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not _SERVICE_NAME.match(self.service):
            raise InvalidInstanceError(
                f"service name {self.service!r} must be letters, digits, '-' or '_'"
            )
        if not self.instance_id:
            raise InvalidInstanceError("instance_id must not be empty")
        if not self.host or any(c.isspace() for c in self.host):
            raise InvalidInstanceError(f"host {self.host!r} is empty or contains spaces")
        if not isinstance(self.version, str):
            raise InvalidInstanceError(f"version must be a string, got {self.version!r}")
        _check_port(self.port, "port")
        ports = {
            str(name): _check_port(port, f"port {name!r}") for name, port in self.ports.items()
        }
        # Frozen dataclass: object.__setattr__ is the sanctioned way to normalize fields.
        object.__setattr__(self, "ports", ports)
        object.__setattr__(self, "metadata", {str(k): str(v) for k, v in self.metadata.items()})
        object.__setattr__(self, "started_at", _as_utc(self.started_at, "started_at"))
        object.__setattr__(self, "last_heartbeat", _as_utc(self.last_heartbeat, "last_heartbeat"))

    @property
    def url(self) -> str:
        """The base URL of the instance's HTTP port, e.g. `http://10.0.0.7:8001`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def heartbeat(self, at: datetime) -> ServiceInstance:
        """A copy of this instance last heard of at `at`."""
        return replace(self, last_heartbeat=at)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601 strings)."""
        return {
            "service": self.service,
            "instance_id": self.instance_id,
            "host": self.host,
            "port": self.port,
            "ports": dict(self.ports),
            "version": self.version,
            "started_at": self.started_at.isoformat(),
            "last_heartbeat": self.last_heartbeat.isoformat(),
            "metadata": dict(self.metadata),
        }

    def to_json(self) -> bytes:
        """The instance as compact UTF-8 JSON, as stored in a registry."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceInstance:
        """Rebuild an instance from `to_dict()` output; InvalidInstanceError if malformed."""
        try:
            return cls(
                service=data["service"],
                instance_id=data["instance_id"],
                host=data["host"],
                port=data["port"],
                ports=data.get("ports") or {},
                version=data.get("version", "unknown"),
                started_at=datetime.fromisoformat(data["started_at"]),
                last_heartbeat=datetime.fromisoformat(data["last_heartbeat"]),
                metadata=data.get("metadata") or {},
            )
        except InvalidInstanceError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInstanceError(f"malformed service instance: {exc!r}") from exc

    @classmethod
    def from_json(cls, raw: bytes | str) -> ServiceInstance:
        """Parse `to_json()` output; InvalidInstanceError if it is not a valid instance."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInstanceError(f"service instance is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInstanceError("service instance JSON must be an object")
        return cls.from_dict(data)
