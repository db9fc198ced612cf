from typing import ClassVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from chassis import ServiceSettings
from identity.adapters.passwords import OWASP_MEMORY_KIB, OWASP_PARALLELISM, OWASP_TIME_COST
from identity.domain.passwords import check_password
from identity.domain.users import normalize_email
from identity.errors import InvalidEmailError, WeakPasswordError

# Dev-only defaults. Outside dev the chassis refuses to start while a secret keeps its
# default, so production must set IDENTITY_ADMIN_PASSWORD and IDENTITY_KEY_ENCRYPTION_SECRET.
DEV_ADMIN_EMAIL = "admin@mercato.local"
DEV_ADMIN_PASSWORD = "mercato-dev-admin-password"  # noqa: S105  (dev only, refused elsewhere)
DEV_KEY_ENCRYPTION_SECRET = "mercato-dev-key-encryption-secret"  # noqa: S105  (dev only)


class IdentitySettings(ServiceSettings):
    """Identity's settings: `MERCATO_*` shared ones plus `IDENTITY_*`."""

    model_config = SettingsConfigDict(env_prefix="IDENTITY_")
    service_name: ClassVar[str] = "identity"

    port: int = Field(8002, ge=0, le=65535)

    issuer: str = Field("mercato-identity", min_length=1, description="`iss` of access tokens")
    audience: str = Field("mercato", min_length=1, description="`aud` of access tokens")
    access_token_ttl: int = Field(300, ge=30, le=86_400, description="seconds")
    refresh_token_ttl: int = Field(14 * 86_400, ge=300, le=365 * 86_400, description="seconds")

    key_rotation_period: int = Field(
        86_400, ge=60, description="seconds a signing key signs before a new one takes over"
    )
    maintenance_interval: float = Field(
        300.0, gt=0, le=86_400, description="seconds between key-rotation checks and clean-ups"
    )
    key_encryption_secret: SecretStr = Field(
        SecretStr(DEV_KEY_ENCRYPTION_SECRET),
        description="seals the signing keys' private halves in the database",
    )

    admin_email: str = DEV_ADMIN_EMAIL
    admin_password: SecretStr = SecretStr(DEV_ADMIN_PASSWORD)

    login_max_failures_per_account: int = Field(5, ge=1, le=1000)
    login_max_failures_per_address: int = Field(20, ge=1, le=100_000)
    login_failure_window: int = Field(900, ge=1, le=86_400, description="seconds")
    forwarded_hops: int = Field(
        1,
        ge=0,
        le=10,
        description="proxies in front that append to X-Forwarded-For (the gateway: 1); "
        "the client address is that many entries from the right; 0 ignores the header",
    )

    password_time_cost: int = Field(OWASP_TIME_COST, ge=OWASP_TIME_COST, le=20)
    password_memory_kib: int = Field(OWASP_MEMORY_KIB, ge=OWASP_MEMORY_KIB, le=4 * 1_048_576)
    password_parallelism: int = Field(OWASP_PARALLELISM, ge=OWASP_PARALLELISM, le=16)

    @field_validator("admin_email")
    @classmethod
    def _admin_email_is_an_address(cls, value: str) -> str:
        try:
            return normalize_email(value, allow_reserved_domains=True).value
        except InvalidEmailError as error:
            raise ValueError(error.detail) from None

    @field_validator("admin_password")
    @classmethod
    def _admin_password_follows_the_policy(
        cls, value: SecretStr, info: ValidationInfo
    ) -> SecretStr:
        try:
            check_password(value.get_secret_value(), email=info.data.get("admin_email", ""))
        except WeakPasswordError as error:
            raise ValueError(error.detail) from None
        return value
