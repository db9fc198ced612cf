from typing import ClassVar

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from chassis import ServiceSettings


class GatewaySettings(ServiceSettings):
    """The gateway's settings: `MERCATO_*` shared ones plus `GATEWAY_*`."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_")
    service_name: ClassVar[str] = "gateway"

    port: int = Field(8080, ge=0, le=65535)
    redis_url: str = Field(
        "", validation_alias=AliasChoices("MERCATO_REDIS_URL", "redis_url"),
        description="share rate-limit buckets through Redis when set",
    )  # fmt: skip
    rate_limit_per_second: float = Field(50.0, gt=0)
    rate_limit_burst: int = Field(100, ge=1)
    request_timeout: float = Field(10.0, gt=0, le=120)
    static_routes: str = Field(
        "", description="`/prefix=http://host:port,/other=…`: upstreams outside the registry"
    )
    cors_origins: str = Field("", description="comma-separated origins allowed by CORS")
    jwt_issuer: str = "mercato-identity"
    jwt_audience: str = "mercato"
    max_header_bytes: int = Field(8190, ge=1024, le=65536)
    supervisor_url: str = Field(
        "", validation_alias=AliasChoices("MERCATO_SUPERVISOR_URL", "supervisor_url"),
        description="`mercato up`'s control API (the console kills instances through it)",
    )  # fmt: skip
