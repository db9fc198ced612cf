"""Password hashing with argon2id (argon2-cffi)."""

from __future__ import annotations

import secrets
import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["OWASP_MEMORY_KIB", "OWASP_PARALLELISM", "OWASP_TIME_COST", "Argon2PasswordHasher"]

# OWASP Password Storage Cheat Sheet, argon2id minimum: 19 MiB, 2 iterations, 1 lane.
OWASP_MEMORY_KIB = 19_456
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1


class Argon2PasswordHasher:
    """argon2id; OWASP's minimum parameters unless told otherwise (tests use tiny ones).

    Hashes made with other parameters still verify, and `needs_rehash` says so, so a
    sign-in upgrades them.
    """

    def __init__(
        self,
        *,
        time_cost: int = OWASP_TIME_COST,
        memory_cost: int = OWASP_MEMORY_KIB,
        parallelism: int = OWASP_PARALLELISM,
    ) -> None:
        self._argon2 = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
        )
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()

    @property
    def parameters(self) -> tuple[int, int, int]:
        """(time_cost, memory_cost in KiB, parallelism)."""
        p = self._argon2
        return p.time_cost, p.memory_cost, p.parallelism

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None:
            # An unknown account costs what a wrong password does.
            self._verify(self._dummy_hash(), password)
            return False
        return self._verify(password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._argon2.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy_hash(self) -> str:
        with self._dummy_lock:
            if self._dummy is None:
                self._dummy = self._argon2.hash(secrets.token_urlsafe(16))
            return self._dummy
