from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chassis import ServiceSettings


class PspSettings(ServiceSettings):
    """The psp's settings: `MERCATO_*` shared ones plus `PSP_*`.

    The `fault_*` settings are the fault knobs at start-up; `PUT /v1/_faults` changes them
    while the process runs.
    """

    model_config = SettingsConfigDict(env_prefix="PSP_")
    service_name: ClassVar[str] = "psp"

    port: int = Field(8007, ge=0, le=65535)

    fault_latency_ms: int = Field(0, ge=0, le=60_000, description="added to every call")
    fault_error_rate: float = Field(
        0.0, ge=0, le=1, description="share of calls answered 500/503 before doing anything"
    )
    fault_timeout_after_charge_rate: float = Field(
        0.0, ge=0, le=1, description="share of effective calls whose answer is held back"
    )
    fault_timeout_seconds: float = Field(
        30.0, ge=0, le=300, description="how long such an answer is held (or until hang-up)"
    )
    fault_seed: int | None = Field(None, description="seeds the fault dice, for repeatable runs")
