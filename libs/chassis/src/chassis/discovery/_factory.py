"""One setting picks the registry: a URL whose scheme names the backend."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from chassis.discovery._instance import UtcClock, utc_now
from chassis.discovery._kubernetes import DEFAULT_HOST_PATTERN, KubernetesDnsRegistry
from chassis.discovery._memory import InMemoryRegistry
from chassis.discovery._nats_kv import DEFAULT_BUCKET, DEFAULT_TTL, NatsKvRegistry
from chassis.discovery._registry import Registry
from chassis.discovery._static import StaticRegistry
from chassis.discovery.errors import InvalidSpecError

__all__ = ["registry_from_url"]


def registry_from_url(url: str, *, clock: UtcClock = utc_now) -> Registry:
    """Build the registry a URL names (not started: call `start()`).

    - `nats://host:4222[,nats://other:4222][?bucket=mercato_registry&ttl=10&heartbeat=3]`
      (or `tls://`): `NatsKvRegistry`; `heartbeat` defaults to ttl/3.
    - `static:catalog=http://127.0.0.1:8001,http://127.0.0.1:8002;identity=127.0.0.1:8101`:
      `StaticRegistry`.
    - `kubernetes://<namespace>[?port=80&pattern={service}.{namespace}.svc.cluster.local]`
      (or `k8s://`; namespace defaults to `default`): `KubernetesDnsRegistry`.
    - `memory://`: `InMemoryRegistry`, empty.
    """
    scheme, sep, rest = url.strip().partition(":")
    scheme = scheme.lower()
    if not sep:
        raise InvalidSpecError(f"registry URL {url!r} has no scheme (nats://, static:, ...)")
    if scheme in ("nats", "tls"):
        return _nats(url.strip(), clock=clock)
    if scheme == "static":
        return StaticRegistry.from_spec(rest, clock=clock)
    if scheme in ("kubernetes", "k8s"):
        return _kubernetes(url.strip(), clock=clock)
    if scheme == "memory":
        return InMemoryRegistry()
    raise InvalidSpecError(
        f"unknown registry scheme {scheme!r} in {url!r}: use nats://, static:, kubernetes:// "
        "or memory://"
    )


def _options(query: str, *, allowed: set[str], url: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InvalidSpecError(f"malformed query in registry URL {url!r}") from exc
    unknown = set(parsed) - allowed
    if unknown:
        raise InvalidSpecError(
            f"unknown option(s) {sorted(unknown)} in {url!r}; allowed: {sorted(allowed)}"
        )
    return {key: values[-1] for key, values in parsed.items()}


def _number(options: dict[str, str], key: str, default: float | None, *, url: str) -> float | None:
    if key not in options:
        return default
    try:
        return float(options[key])
    except ValueError as exc:
        raise InvalidSpecError(f"option {key}={options[key]!r} in {url!r} is not a number") from exc


def _nats(url: str, *, clock: UtcClock) -> NatsKvRegistry:
    servers_part, _, query = url.partition("?")
    servers = [server.strip() for server in servers_part.split(",") if server.strip()]
    for server in servers:
        parts = urlsplit(server)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise InvalidSpecError(f"{server!r} in {url!r} is not a nats:// or tls:// URL")
    options = _options(query, allowed={"bucket", "ttl", "heartbeat"}, url=url)
    ttl = _number(options, "ttl", DEFAULT_TTL, url=url)
    assert ttl is not None
    return NatsKvRegistry(
        servers,
        bucket=options.get("bucket", DEFAULT_BUCKET),
        ttl=ttl,
        heartbeat_interval=_number(options, "heartbeat", None, url=url),
        clock=clock,
    )


def _kubernetes(url: str, *, clock: UtcClock) -> KubernetesDnsRegistry:
    parts = urlsplit(url)
    if parts.path not in ("", "/"):
        raise InvalidSpecError(f"expected kubernetes://<namespace>, got {url!r}")
    options = _options(parts.query, allowed={"port", "pattern"}, url=url)
    port = _number(options, "port", 80.0, url=url)
    if port is None or not port.is_integer():
        raise InvalidSpecError(f"port in {url!r} must be an integer")
    return KubernetesDnsRegistry(
        parts.netloc or "default",
        port=int(port),
        host_pattern=options.get("pattern", DEFAULT_HOST_PATTERN),
        clock=clock,
    )
