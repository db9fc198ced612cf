"""Fixtures for payments' tests."""

from __future__ import annotations

import pytest

from payments.adapters.memory import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
