from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from chassis import ServiceSettings


class PaymentsSettings(ServiceSettings):
    """Payments' settings: `MERCATO_*` shared ones plus `PAYMENTS_*`."""

    model_config = SettingsConfigDict(env_prefix="PAYMENTS_")
    service_name: ClassVar[str] = "payments"

    port: int = Field(8005, ge=0, le=65535)

    psp_service: str = Field("psp", min_length=1, description="the psp's name in the registry")
    psp_timeout: float = Field(5.0, gt=0, le=120, description="seconds per call to the psp")
    psp_attempts: int = Field(
        3, ge=1, le=10, description="tries per call (same idempotency key) before backing off"
    )
    psp_breaker_wait: float = Field(
        5.0, gt=0, le=300, description="seconds an open breaker to the psp waits before probing"
    )
    retry_base_delay: float = Field(
        0.5, gt=0, le=60, description="first backoff (seconds) after a psp call failed"
    )
    retry_max_delay: float = Field(30.0, gt=0, le=3600, description="backoff cap (seconds)")
    reconcile_interval: float = Field(
        2.0, gt=0, le=600, description="seconds between sweeps for due and unknown psp calls"
    )
    max_concurrent_payments: int = Field(
        32, ge=1, le=1000, description="payments whose psp calls run at once"
    )

    @model_validator(mode="after")
    def _backoff_grows_to_its_cap(self) -> "PaymentsSettings":
        if self.retry_base_delay > self.retry_max_delay:
            raise ValueError("retry_base_delay must not exceed retry_max_delay")
        return self
