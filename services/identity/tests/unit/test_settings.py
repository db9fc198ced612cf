"""Identity's settings: defaults, environment names, and what refuses to start."""

import pytest

from chassis import load_settings
from chassis.errors import ConfigurationError
from identity.settings import DEV_ADMIN_PASSWORD, IdentitySettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MERCATO_ENVIRONMENT",
        "MERCATO_INTERNAL_SECRET",
        "IDENTITY_ADMIN_EMAIL",
        "IDENTITY_ADMIN_PASSWORD",
        "IDENTITY_KEY_ENCRYPTION_SECRET",
        "IDENTITY_PORT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_dev_defaults() -> None:
    settings = load_settings(IdentitySettings)
    assert settings.port == 8002
    assert (settings.issuer, settings.audience) == ("mercato-identity", "mercato")
    assert (settings.access_token_ttl, settings.refresh_token_ttl) == (300, 14 * 86_400)
    assert settings.key_rotation_period == 86_400
    assert settings.admin_email == "admin@mercato.local"
    assert settings.admin_password.get_secret_value() == DEV_ADMIN_PASSWORD
    assert (settings.login_max_failures_per_account, settings.login_max_failures_per_address) == (
        5,
        20,
    )
    assert settings.login_failure_window == 900
    assert settings.forwarded_hops == 1
    assert (
        settings.password_time_cost,
        settings.password_memory_kib,
        settings.password_parallelism,
    ) == (2, 19_456, 1)
    assert settings.database_url.endswith("/identity/identity.db")
    assert IdentitySettings.env_name("admin_password") == "IDENTITY_ADMIN_PASSWORD"


def test_the_supervisor_passes_the_admin_password_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IDENTITY_ADMIN_PASSWORD", "Zq3-random-from-the-data-dir")
    monkeypatch.setenv("IDENTITY_ADMIN_EMAIL", " Ops@Example.COM ")
    monkeypatch.setenv("IDENTITY_PORT", "18002")
    settings = load_settings(IdentitySettings)
    assert settings.admin_password.get_secret_value() == "Zq3-random-from-the-data-dir"
    assert settings.admin_email == "Ops@example.com"
    assert settings.port == 18002


@pytest.mark.parametrize("environment", ["test", "staging", "prod"])
def test_default_secrets_refuse_to_start_outside_dev(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("MERCATO_ENVIRONMENT", environment)
    monkeypatch.setenv("MERCATO_INTERNAL_SECRET", "a-real-internal-secret-value")
    monkeypatch.setenv("IDENTITY_KEY_ENCRYPTION_SECRET", "a-real-key-encryption-secret")
    with pytest.raises(ConfigurationError, match="admin_password is a placeholder"):
        load_settings(IdentitySettings)
    monkeypatch.setenv("IDENTITY_ADMIN_PASSWORD", "a-real-admin-password-2026")
    monkeypatch.delenv("IDENTITY_KEY_ENCRYPTION_SECRET")
    with pytest.raises(ConfigurationError, match="key_encryption_secret is a placeholder"):
        load_settings(IdentitySettings)
    monkeypatch.setenv("IDENTITY_KEY_ENCRYPTION_SECRET", "a-real-key-encryption-secret")
    assert load_settings(IdentitySettings).environment == environment


@pytest.mark.parametrize("password", ["short", "password1234", "aaaaaaaaaaaaaaaa"])
def test_a_weak_admin_password_is_refused_without_being_echoed(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    monkeypatch.setenv("IDENTITY_ADMIN_PASSWORD", password)
    with pytest.raises(ConfigurationError, match="IDENTITY_ADMIN_PASSWORD") as caught:
        load_settings(IdentitySettings)
    assert password not in caught.value.detail


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IDENTITY_PASSWORD_MEMORY_KIB", "4096"),
        ("IDENTITY_PASSWORD_TIME_COST", "1"),
        ("IDENTITY_ADMIN_EMAIL", "not an email"),
        ("IDENTITY_ACCESS_TOKEN_TTL", "0"),
        ("IDENTITY_FORWARDED_HOPS", "-1"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings(IdentitySettings)
