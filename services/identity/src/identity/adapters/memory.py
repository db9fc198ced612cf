"""In-memory fakes of identity's ports, for fast unit tests (same contract as the SQL ones)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType

from identity.domain.keys import SigningKey
from identity.domain.tokens import RefreshToken
from identity.domain.users import User, UserRegistered
from identity.errors import EmailTakenError


class FakeClock:
    """A `Clock` that only moves when told, for exact tests of windows and expiries."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class InMemoryState:
    """Everything the fake database holds; each unit of work stages changes in a copy."""

    users: dict[str, User] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    signing_keys: dict[str, SigningKey] = field(default_factory=dict)
    login_failures: list[tuple[str, datetime]] = field(default_factory=list)


class InMemoryUserRepository:
    def __init__(self, state: InMemoryState) -> None:
        self.state = state

    async def add(self, user: User) -> None:
        if any(u.email_key == user.email_key for u in self.state.users.values()):
            raise EmailTakenError()
        self.state.users[user.id] = user

    async def save(self, user: User) -> None:
        if user.id in self.state.users:
            self.state.users[user.id] = user

    async def get(self, user_id: str) -> User | None:
        return self.state.users.get(user_id)

    async def get_by_email(self, email_key: str) -> User | None:
        return next((u for u in self.state.users.values() if u.email_key == email_key), None)


class InMemoryRefreshTokenRepository:
    def __init__(self, state: InMemoryState) -> None:
        self.state = state

    async def add(self, token: RefreshToken) -> None:
        self.state.refresh_tokens[token.id] = token

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        tokens = self.state.refresh_tokens.values()
        return next((t for t in tokens if t.token_hash == token_hash), None)

    async def mark_rotated(self, token_id: str, *, at: datetime) -> bool:
        token = self.state.refresh_tokens.get(token_id)
        if token is None or token.is_spent:
            return False
        self.state.refresh_tokens[token_id] = replace(token, rotated_at=at)
        return True

    async def revoke_family(self, family_id: str, *, at: datetime) -> None:
        for token_id, token in list(self.state.refresh_tokens.items()):
            if token.family_id == family_id and token.revoked_at is None:
                self.state.refresh_tokens[token_id] = replace(token, revoked_at=at)

    async def delete_expired(self, *, before: datetime) -> int:
        expired = [i for i, t in self.state.refresh_tokens.items() if t.expires_at <= before]
        for token_id in expired:
            del self.state.refresh_tokens[token_id]
        return len(expired)


class InMemorySigningKeyRepository:
    def __init__(self, state: InMemoryState) -> None:
        self.state = state

    async def add(self, key: SigningKey) -> None:
        self.state.signing_keys[key.kid] = key

    async def all(self) -> list[SigningKey]:
        return sorted(self.state.signing_keys.values(), key=lambda k: (k.created_at, k.kid))

    async def retire(self, key: SigningKey) -> bool:
        stored = self.state.signing_keys.get(key.kid)
        if stored is None or not stored.is_active:
            return False
        self.state.signing_keys[key.kid] = replace(
            stored, retired_at=key.retired_at, publish_until=key.publish_until
        )
        return True

    async def delete_unpublished(self, *, before: datetime) -> int:
        gone = [
            kid
            for kid, key in self.state.signing_keys.items()
            if not key.is_active and key.publish_until is not None and key.publish_until <= before
        ]
        for kid in gone:
            del self.state.signing_keys[kid]
        return len(gone)


class InMemoryLoginAttemptRepository:
    def __init__(self, state: InMemoryState) -> None:
        self.state = state

    async def record_failure(self, subjects: Sequence[str], *, at: datetime) -> None:
        self.state.login_failures.extend((subject, at) for subject in subjects)

    async def failures_since(self, subject: str, *, since: datetime) -> list[datetime]:
        return sorted(at for s, at in self.state.login_failures if s == subject and at > since)

    async def clear(self, subject: str) -> None:
        self.state.login_failures = [f for f in self.state.login_failures if f[0] != subject]

    async def delete_older_than(self, before: datetime) -> int:
        kept = [f for f in self.state.login_failures if f[1] > before]
        removed = len(self.state.login_failures) - len(kept)
        self.state.login_failures = kept
        return removed


class InMemoryIdentityUnitOfWork:
    """Stages writes in a copy of the state and publishes them on commit, like a transaction."""

    users: InMemoryUserRepository
    refresh_tokens: InMemoryRefreshTokenRepository
    signing_keys: InMemorySigningKeyRepository
    login_attempts: InMemoryLoginAttemptRepository

    def __init__(self, state: InMemoryState | None = None) -> None:
        self.committed = state or InMemoryState()
        self.commits = 0
        self.events: list[UserRegistered] = []
        self._pending: list[UserRegistered] = []

    async def __aenter__(self) -> InMemoryIdentityUnitOfWork:
        state = self.committed
        self._staged = InMemoryState(
            dict(state.users),
            dict(state.refresh_tokens),
            dict(state.signing_keys),
            list(state.login_failures),
        )
        self._pending = []
        self.users = InMemoryUserRepository(self._staged)
        self.refresh_tokens = InMemoryRefreshTokenRepository(self._staged)
        self.signing_keys = InMemorySigningKeyRepository(self._staged)
        self.login_attempts = InMemoryLoginAttemptRepository(self._staged)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pending = []

    def record(self, event: UserRegistered) -> None:
        self._pending.append(event)

    async def commit(self) -> None:
        self.committed.users = dict(self._staged.users)
        self.committed.refresh_tokens = dict(self._staged.refresh_tokens)
        self.committed.signing_keys = dict(self._staged.signing_keys)
        self.committed.login_failures = list(self._staged.login_failures)
        self.events.extend(self._pending)
        self._pending = []
        self.commits += 1
