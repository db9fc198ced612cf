from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chassis import ServiceSettings


class CatalogSettings(ServiceSettings):
    """Catalog's settings: `MERCATO_*` shared ones plus `CATALOG_*`."""

    model_config = SettingsConfigDict(env_prefix="CATALOG_")
    service_name: ClassVar[str] = "catalog"

    port: int = Field(8001, ge=0, le=65535)
    max_page_size: int = Field(100, ge=1, le=1000)
