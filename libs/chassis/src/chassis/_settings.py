"""Typed settings: one class per service, validated once at start-up and passed in."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from chassis.errors import ConfigurationError

__all__ = ["Environment", "ServiceSettings", "load_settings"]

# Values that ship in examples and docs; a real deployment must replace them.
_PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "password", "dev-insecure-secret", "admin"}
)


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    STAGING = "staging"
    PROD = "prod"


def _shared(name: str) -> Any:
    """A field read from the platform-wide `MERCATO_<NAME>` variable (no service prefix)."""
    return AliasChoices(f"MERCATO_{name}", name.lower())


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclasses set `service_name` and `env_prefix`.

    Shared settings come from `MERCATO_*` variables; a service's own from `<SERVICE>_*`
    (e.g. `CATALOG_PORT`).
    """

    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, validate_default=True
    )
    service_name: ClassVar[str] = "service"

    data_dir: Path = Field(Path(".mercato"), validation_alias=_shared("DATA_DIR"))
    environment: Environment = Field(Environment.DEV, validation_alias=_shared("ENVIRONMENT"))
    broker_url: str = Field("nats://127.0.0.1:4222", validation_alias=_shared("BROKER_URL"))
    registry_url: str = Field(
        "",
        validation_alias=_shared("REGISTRY_URL"),
        description="service registry (nats://…, static:…, kubernetes://…); empty: none",
    )
    instance_id: str = Field("", validation_alias=_shared("INSTANCE_ID"))
    internal_secret: SecretStr = Field(
        SecretStr("dev-insecure-secret"),
        validation_alias=_shared("INTERNAL_SECRET"),
        description="HMAC key of the internal identity tokens the gateway hands to services",
    )
    log_level: str = Field(
        "info", validation_alias=_shared("LOG_LEVEL"), pattern=r"(?i)^(debug|info|warning|error)$"
    )
    trace_dir: Path | None = Field(
        None,
        validation_alias=_shared("TRACE_DIR"),
        description="write spans as JSON lines here (the embedded default; `mercato trace`)",
    )
    trace_sample_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        validation_alias=_shared("TRACE_SAMPLE_RATIO"),
        description="share of new traces recorded; a caller's sampling decision is followed",
    )

    db_pool_size: int = Field(
        5,
        ge=1,
        le=100,
        validation_alias=_shared("DB_POOL_SIZE"),
        description="PostgreSQL connections kept per instance (as many again may open under "
        "bursts): keep instances x 2 x this under the server's max_connections",
    )

    host: str = "127.0.0.1"
    advertise_host: str = ""  # the address others reach this instance at; default `host`
    port: int = Field(8000, ge=0, le=65535)
    database_url: str = ""
    migrate_on_start: bool | None = None
    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    shutdown_timeout: float = Field(10.0, gt=0, le=300)

    @field_validator("trace_dir", mode="before")
    @classmethod
    def _empty_means_none(cls, value: Any) -> Any:
        return None if value == "" else value  # MERCATO_TRACE_DIR= turns the files off

    @model_validator(mode="after")
    def _fill_defaults_and_refuse_placeholders(self) -> ServiceSettings:
        if not self.instance_id:
            object.__setattr__(self, "instance_id", f"{self.service_name}-{os.getpid()}")
        if not self.database_url:
            path = self.data_dir.resolve() / self.service_name / f"{self.service_name}.db"
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{path}")
        if self.environment is not Environment.DEV:
            for name, field in type(self).model_fields.items():
                value = getattr(self, name)
                if not isinstance(value, SecretStr):
                    continue
                secret = value.get_secret_value()
                is_default = (
                    isinstance(field.default, SecretStr)
                    and secret == field.default.get_secret_value()
                )
                if is_default or secret.strip().lower() in _PLACEHOLDER_SECRETS:
                    raise ValueError(f"{name} is a placeholder secret; set a real one outside dev")
        return self

    @property
    def should_migrate_on_start(self) -> bool:
        if self.migrate_on_start is not None:
            return self.migrate_on_start
        return self.environment in (Environment.DEV, Environment.TEST)

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets `field`."""
        info = cls.model_fields.get(field)
        if info is not None and isinstance(info.validation_alias, AliasChoices):
            first = info.validation_alias.choices[0]
            return str(first)
        prefix = cls.model_config.get("env_prefix", "")
        return f"{prefix}{field}".upper()


S = TypeVar("S", bound=ServiceSettings)


def _describe(cls: type[ServiceSettings], error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        loc = [str(part) for part in item["loc"]]
        field = loc[0] if loc else ""
        if field.startswith("MERCATO_"):
            name = field
        elif field:
            name = cls.env_name(field)
        else:
            name = "settings"
        problems.append(f"{name}: {item['msg']}")
    return f"{cls.service_name}: invalid setting " + "; ".join(problems)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings from the environment, or raise `ConfigurationError` with one clear line.

    The line names each bad setting by its environment variable and never echoes a value.
    """
    try:
        return cls(**overrides)
    except ValidationError as error:
        raise ConfigurationError(_describe(cls, error)) from None


def load_settings_or_exit(cls: type[S]) -> S:
    """For `main()`: a bad setting ends the process with one line on stderr and status 2."""
    try:
        return load_settings(cls)
    except ConfigurationError as error:
        print(error.detail, file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
