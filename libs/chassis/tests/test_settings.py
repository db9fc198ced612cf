from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from chassis import Environment, ServiceSettings, load_settings
from chassis.errors import ConfigurationError


class ShopSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SHOP_")
    service_name: ClassVar[str] = "shop"

    port: int = Field(8123, ge=0, le=65535)
    api_key: SecretStr = SecretStr("changeme")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith(("MERCATO_", "SHOP_")):
            monkeypatch.delenv(name)


def test_service_settings_come_from_their_prefix_and_shared_ones_from_mercato(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SHOP_PORT", "9100")
    monkeypatch.setenv("MERCATO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MERCATO_INSTANCE_ID", "shop-7")

    settings = load_settings(ShopSettings)

    assert settings.port == 9100
    assert settings.data_dir == tmp_path
    assert settings.instance_id == "shop-7"
    assert settings.environment is Environment.DEV
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/shop/shop.db"


def test_a_bad_value_gives_one_line_naming_the_variable_and_never_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_PORT", "eighty")
    monkeypatch.setenv("MERCATO_ENVIRONMENT", "moon")

    with pytest.raises(ConfigurationError) as caught:
        load_settings(ShopSettings)

    message = caught.value.detail
    assert "\n" not in message
    assert message.startswith("shop: invalid setting ")
    assert "SHOP_PORT: Input should be a valid integer" in message
    assert "MERCATO_ENVIRONMENT" in message
    assert "eighty" not in message
    assert "moon" not in message


def test_placeholder_secrets_are_refused_outside_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCATO_ENVIRONMENT", "prod")
    monkeypatch.setenv("MERCATO_INTERNAL_SECRET", "a-real-secret-of-decent-length")

    with pytest.raises(ConfigurationError, match="api_key is a placeholder secret"):
        load_settings(ShopSettings)

    monkeypatch.setenv("SHOP_API_KEY", "k3y-from-the-vault")
    assert load_settings(ShopSettings).api_key.get_secret_value() == "k3y-from-the-vault"


def test_the_default_internal_secret_is_refused_in_prod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCATO_ENVIRONMENT", "prod")
    monkeypatch.setenv("SHOP_API_KEY", "k3y-from-the-vault")

    with pytest.raises(ConfigurationError, match="internal_secret is a placeholder"):
        load_settings(ShopSettings)


def test_placeholders_are_fine_in_dev_and_migrations_run_on_start_there() -> None:
    settings = load_settings(ShopSettings)
    assert settings.should_migrate_on_start
    assert not load_settings(
        ShopSettings,
        environment="prod",
        internal_secret="s3cr3t-s3cr3t",
        api_key="k3y-from-the-vault",
    ).should_migrate_on_start


def test_settings_are_immutable() -> None:
    settings = load_settings(ShopSettings)
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]
