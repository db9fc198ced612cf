from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from chassis import ServiceSettings


class NotificationsSettings(ServiceSettings):
    """Notifications' settings: `MERCATO_*` shared ones plus `NOTIFICATIONS_*`."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_")
    service_name: ClassVar[str] = "notifications"

    port: int = Field(8006, ge=0, le=65535)
    max_page_size: int = Field(100, ge=1, le=1000)
