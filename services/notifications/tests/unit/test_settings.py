from pathlib import Path

import pytest

from chassis import load_settings
from chassis.errors import ConfigurationError
from notifications.settings import NotificationsSettings


def test_defaults_and_own_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MERCATO_DATA_DIR", str(tmp_path))
    assert NotificationsSettings().port == 8006
    monkeypatch.setenv("NOTIFICATIONS_PORT", "9106")
    monkeypatch.setenv("NOTIFICATIONS_MAX_PAGE_SIZE", "50")
    settings = NotificationsSettings()
    assert (settings.port, settings.max_page_size) == (9106, 50)
    assert settings.database_url.endswith("/notifications/notifications.db")


def test_a_bad_value_is_named_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFICATIONS_MAX_PAGE_SIZE", "0")
    with pytest.raises(ConfigurationError, match="NOTIFICATIONS_MAX_PAGE_SIZE"):
        load_settings(NotificationsSettings)


def test_the_placeholder_secret_is_refused_outside_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCATO_ENVIRONMENT", "prod")
    monkeypatch.delenv("MERCATO_INTERNAL_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="internal_secret"):
        load_settings(NotificationsSettings)
