"""Errors of service discovery and client-side load balancing.

    DiscoveryError
    ├── NoInstancesError        no instance of the service is known (or all are gone)
    ├── InvalidSpecError        a registry URL or a static spec cannot be parsed
    ├── InvalidInstanceError    a service instance is malformed (bad port, naive time, bad JSON)
    └── RegistryUnavailableError the registry backend cannot be reached or is not started

`InvalidSpecError` and `InvalidInstanceError` are also `ValueError`s, so settings
validation that expects a `ValueError` reports them as bad input.
"""

from __future__ import annotations

__all__ = [
    "DiscoveryError",
    "InvalidInstanceError",
    "InvalidSpecError",
    "NoInstancesError",
    "RegistryUnavailableError",
]


class DiscoveryError(Exception):
    """Base of every error raised by `chassis.discovery`."""


class NoInstancesError(DiscoveryError):
    """No instance of `service` can take a request."""

    def __init__(self, service: str) -> None:
        super().__init__(f"no instance of service {service!r} is available")
        self.service = service


class InvalidSpecError(DiscoveryError, ValueError):
    """A registry URL or a static instance spec is malformed."""


class InvalidInstanceError(DiscoveryError, ValueError):
    """A `ServiceInstance` (or its JSON) is malformed."""


class RegistryUnavailableError(DiscoveryError):
    """The registry backend cannot be reached, or was used before `start()`."""
