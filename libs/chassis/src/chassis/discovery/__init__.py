"""Service discovery and client-side load balancing.

Instances announce themselves in a `Registry`; callers look services up in its local
view and spread requests with a `LoadBalancer`. `registry_from_url` picks the backend
from one setting: a NATS KV bucket with TTL heartbeats (the embedded default),
Kubernetes Service DNS, a static list, or memory. Errors are in
`chassis.discovery.errors`.
"""

from chassis.discovery._balancer import OUTLIER_EJECTIONS, BalancingStrategy, LoadBalancer
from chassis.discovery._factory import registry_from_url
from chassis.discovery._instance import ServiceInstance, UtcClock, utc_now
from chassis.discovery._kubernetes import DEFAULT_HOST_PATTERN, KubernetesDnsRegistry
from chassis.discovery._memory import InMemoryRegistry
from chassis.discovery._nats_kv import DEFAULT_BUCKET, DEFAULT_TTL, NatsKvRegistry, registry_key
from chassis.discovery._registry import ChangeListener, Registry, RegistryChange, Unsubscribe
from chassis.discovery._static import StaticRegistry, parse_static_spec
from chassis.discovery.errors import (
    DiscoveryError,
    InvalidInstanceError,
    InvalidSpecError,
    NoInstancesError,
    RegistryUnavailableError,
)

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_HOST_PATTERN",
    "DEFAULT_TTL",
    "OUTLIER_EJECTIONS",
    "BalancingStrategy",
    "ChangeListener",
    "DiscoveryError",
    "InMemoryRegistry",
    "InvalidInstanceError",
    "InvalidSpecError",
    "KubernetesDnsRegistry",
    "LoadBalancer",
    "NatsKvRegistry",
    "NoInstancesError",
    "Registry",
    "RegistryChange",
    "RegistryUnavailableError",
    "ServiceInstance",
    "StaticRegistry",
    "Unsubscribe",
    "UtcClock",
    "parse_static_spec",
    "registry_from_url",
    "registry_key",
    "utc_now",
]
