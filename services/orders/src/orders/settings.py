from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chassis import ServiceSettings


class OrdersSettings(ServiceSettings):
    """Orders' settings: `MERCATO_*` shared ones plus `ORDERS_*`."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_")
    service_name: ClassVar[str] = "orders"

    port: int = Field(8004, ge=0, le=65535)
    max_page_size: int = Field(100, ge=1, le=1000)

    max_pending_orders: int = Field(
        20, ge=1, le=10_000, description="PENDING orders one user may have at once"
    )
    pending_retry_after: int = Field(
        10, ge=1, le=3600, description="seconds a user over the pending limit is told to wait"
    )
    idempotency_ttl: int = Field(
        86_400, ge=60, le=30 * 86_400, description="seconds an Idempotency-Key is remembered"
    )

    checkout_max_wait: float = Field(
        4.0, gt=0, le=600,
        description="seconds an order may stay PENDING before it is late; while many are, "
        "new orders are refused with 429 and Retry-After (load shedding)",
    )  # fmt: skip
    checkout_floor: int = Field(
        20, ge=1, le=100_000, description="checkouts always allowed in flight, whatever the pace"
    )

    catalog_timeout: float = Field(3.0, gt=0, le=60, description="seconds per catalog call")

    saga_step_timeout: float = Field(
        15.0, gt=0, le=3600, description="seconds a checkout step waits for its reply"
    )
    saga_max_step_timeout: float = Field(
        300.0, gt=0, le=86_400, description="cap of a re-issued step's doubling wait"
    )
    saga_poll_interval: float = Field(
        1.0, gt=0, le=60, description="seconds between checks for timed-out checkout steps"
    )
    saga_resume_grace: float = Field(
        5.0, ge=0, le=3600, description="steps sent longer ago are re-issued on start-up"
    )
    maintenance_interval: float = Field(
        3600.0, gt=0, le=86_400, description="seconds between clean-ups of expired keys"
    )
