from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chassis import ServiceSettings


class InventorySettings(ServiceSettings):
    """Inventory's settings: `MERCATO_*` shared ones plus `INVENTORY_*`."""

    model_config = SettingsConfigDict(env_prefix="INVENTORY_")
    service_name: ClassVar[str] = "inventory"

    port: int = Field(8003, ge=0, le=65535)
    grpc_port: int = Field(
        50051,
        ge=0,
        le=65535,
        description="port of the gRPC API; 0 picks a free one (registered as the `grpc` port)",
    )
    initial_stock: int = Field(
        100, ge=0, le=1_000_000_000, description="units a product starts with when created"
    )
    reservation_ttl: float = Field(
        900.0,
        ge=1,
        le=7 * 86_400,
        description="seconds a reservation holds stock unless committed; must be longer than "
        "the orders saga timeout, so that expiry only frees what a dead saga left behind",
    )
    expiry_interval: float = Field(
        5.0, gt=0, le=3600, description="seconds between looks for expired reservations"
    )
    expiry_batch: int = Field(200, ge=1, le=10_000, description="expiries per look, at most")
