"""What a Mercato platform is made of: the services `mercato up` runs, in start order.

The CLI knows services only by how to start them and where they listen; it never imports
them (they may not even be installed in the same environment in production).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str  # `python -m <module>` serves; `python -m <module> migrate` migrates
    preferred_port: int  # used when free, so URLs are stable from one run to the next
    env_prefix: str
    edge: bool = False  # listens on the platform's public port (--port / MERCATO_PORT)

    @property
    def port_variable(self) -> str:
        return f"{self.env_prefix}PORT"


# Start order; stop order is the reverse, so the edge stops taking work first.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("psp", "psp", 8007, "PSP_"),
    ServiceSpec("catalog", "catalog", 8001, "CATALOG_"),
    ServiceSpec("identity", "identity", 8002, "IDENTITY_"),
    ServiceSpec("inventory", "inventory", 8003, "INVENTORY_"),
    ServiceSpec("payments", "payments", 8005, "PAYMENTS_"),
    ServiceSpec("orders", "orders", 8004, "ORDERS_"),
    ServiceSpec("notifications", "notifications", 8006, "NOTIFICATIONS_"),
    ServiceSpec("gateway", "gateway", 8080, "GATEWAY_", edge=True),
)

SERVICES_BY_NAME = {spec.name: spec for spec in SERVICES}
