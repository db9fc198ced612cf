import pytest

from chassis import load_settings
from chassis.errors import ConfigurationError
from inventory.settings import InventorySettings


def test_defaults_and_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_GRPC_PORT", "0")
    monkeypatch.setenv("INVENTORY_INITIAL_STOCK", "7")
    settings = load_settings(InventorySettings)
    assert settings.port == 8003
    assert settings.grpc_port == 0
    assert settings.initial_stock == 7
    assert settings.reservation_ttl == 900
    assert settings.database_url.endswith("inventory/inventory.db")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INVENTORY_GRPC_PORT", "70000"),
        ("INVENTORY_INITIAL_STOCK", "-1"),
        ("INVENTORY_RESERVATION_TTL", "0"),
        ("INVENTORY_EXPIRY_INTERVAL", "0"),
    ],
)
def test_bad_values_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(InventorySettings)
