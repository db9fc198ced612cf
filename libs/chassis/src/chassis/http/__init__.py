"""Service-to-service HTTP: discovered, balanced, resilient calls (aiohttp underneath)."""

from chassis.http._client import (
    ServiceCallError,
    ServiceClient,
    ServiceResponse,
    ServiceUnavailableError,
)

__all__ = ["ServiceCallError", "ServiceClient", "ServiceResponse", "ServiceUnavailableError"]
