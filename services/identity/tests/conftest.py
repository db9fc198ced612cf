"""Fixtures for identity's tests: a settable clock, a fast hasher, test settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from identity.adapters.memory import FakeClock
from identity.adapters.passwords import Argon2PasswordHasher
from identity.settings import IdentitySettings

INTERNAL_SECRET = "identity-test-internal-secret"
ADMIN_EMAIL = "root@mercato.local"
ADMIN_PASSWORD = "test-admin-password-2026"


SettingsFactory = Callable[..., IdentitySettings]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hasher() -> Argon2PasswordHasher:
    """argon2id with the smallest parameters: tests stay fast; production never uses it."""
    return Argon2PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """Test settings (real secrets, so `environment=test` accepts them) with overrides."""

    def make(**overrides: object) -> IdentitySettings:
        values: dict[str, object] = {
            "environment": "test",
            "data_dir": tmp_path,
            "broker_url": "memory://",
            "internal_secret": INTERNAL_SECRET,
            "key_encryption_secret": "identity-test-key-secret",
            "admin_email": ADMIN_EMAIL,
            "admin_password": ADMIN_PASSWORD,
        }
        values.update(overrides)
        return IdentitySettings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> IdentitySettings:
    return make_settings()
