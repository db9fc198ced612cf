"""What the service layer needs from the outside world, as Protocols named by role."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol

from identity.domain.keys import SigningKey
from identity.domain.tokens import RefreshToken
from identity.domain.users import User, UserRegistered

Clock = Callable[[], datetime]


class PasswordHasher(Protocol):
    """Slow, salted password hashing. Blocking and CPU-bound: call it from a thread."""

    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches. With no hash (unknown user) it spends the same time
        on a dummy hash and returns False, so timing does not tell accounts apart."""
        ...

    def needs_rehash(self, password_hash: str) -> bool: ...


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Store a new user; `EmailTakenError` if its email key is taken."""
        ...

    async def save(self, user: User) -> None: ...
    async def get(self, user_id: str) -> User | None: ...
    async def get_by_email(self, email_key: str) -> User | None: ...


class RefreshTokenRepository(Protocol):
    async def add(self, token: RefreshToken) -> None: ...
    async def get_by_hash(self, token_hash: str) -> RefreshToken | None: ...

    async def mark_rotated(self, token_id: str, *, at: datetime) -> bool:
        """Mark a token swapped, only if it was neither swapped nor revoked: True if this
        call did it (so two concurrent refreshes with one token cannot both succeed)."""
        ...

    async def revoke_family(self, family_id: str, *, at: datetime) -> None: ...
    async def delete_expired(self, *, before: datetime) -> int: ...


class SigningKeyRepository(Protocol):
    async def add(self, key: SigningKey) -> None: ...
    async def all(self) -> list[SigningKey]: ...

    async def retire(self, key: SigningKey) -> bool:
        """Store `key`'s retirement, only if it is still active there: True if this call
        retired it (so concurrent rotations by several replicas make one new key)."""
        ...

    async def delete_unpublished(self, *, before: datetime) -> int:
        """Forget retired keys no longer published at `before` (their private keys too)."""
        ...


class LoginAttemptRepository(Protocol):
    async def record_failure(self, subjects: Sequence[str], *, at: datetime) -> None: ...
    async def failures_since(self, subject: str, *, since: datetime) -> list[datetime]: ...
    async def clear(self, subject: str) -> None: ...
    async def delete_older_than(self, before: datetime) -> int: ...


class IdentityUnitOfWork(Protocol):
    """One transaction over every repository: all of it commits, or none of it does.

    `events` collects the domain events recorded in the committed transactions; nothing
    publishes them yet (that comes with the outbox).
    """

    @property
    def users(self) -> UserRepository: ...
    @property
    def refresh_tokens(self) -> RefreshTokenRepository: ...
    @property
    def signing_keys(self) -> SigningKeyRepository: ...
    @property
    def login_attempts(self) -> LoginAttemptRepository: ...
    @property
    def events(self) -> list[UserRegistered]: ...

    def record(self, event: UserRegistered) -> None: ...

    async def __aenter__(self) -> IdentityUnitOfWork: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...
