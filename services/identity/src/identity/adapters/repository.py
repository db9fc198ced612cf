"""Identity's storage on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import CursorResult, delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database
from chassis.messaging import Envelope, record_events
from identity.adapters.orm import login_failures, refresh_tokens, signing_keys, users
from identity.domain.keys import SigningKey
from identity.domain.tokens import RefreshToken
from identity.domain.users import User, UserRegistered
from identity.errors import EmailTakenError


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return result.rowcount


def _user_values(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "email_key": user.email_key,
        "name": user.name,
        "password_hash": user.password_hash,
        "roles": " ".join(sorted(user.roles)),
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def _user(row: RowMapping) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        email_key=row["email_key"],
        name=row["name"],
        password_hash=row["password_hash"],
        roles=frozenset(row["roles"].split()),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user: User) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.execute(insert(users).values(_user_values(user)))
        except IntegrityError:
            raise EmailTakenError() from None

    async def save(self, user: User) -> None:
        values = _user_values(user)
        del values["id"], values["created_at"]
        await self.session.execute(update(users).where(users.c.id == user.id).values(values))

    async def get(self, user_id: str) -> User | None:
        result = await self.session.execute(select(users).where(users.c.id == user_id))
        row = result.mappings().first()
        return _user(row) if row else None

    async def get_by_email(self, email_key: str) -> User | None:
        result = await self.session.execute(select(users).where(users.c.email_key == email_key))
        row = result.mappings().first()
        return _user(row) if row else None


def _token(row: RowMapping) -> RefreshToken:
    return RefreshToken(
        id=row["id"],
        token_hash=row["token_hash"],
        family_id=row["family_id"],
        user_id=row["user_id"],
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
        rotated_at=row["rotated_at"],
        revoked_at=row["revoked_at"],
    )


class SqlRefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token: RefreshToken) -> None:
        await self.session.execute(
            insert(refresh_tokens).values(
                id=token.id,
                token_hash=token.token_hash,
                family_id=token.family_id,
                user_id=token.user_id,
                issued_at=token.issued_at,
                expires_at=token.expires_at,
                rotated_at=token.rotated_at,
                revoked_at=token.revoked_at,
            )
        )

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        result = await self.session.execute(
            select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
        )
        row = result.mappings().first()
        return _token(row) if row else None

    async def mark_rotated(self, token_id: str, *, at: datetime) -> bool:
        # A conditional update: PostgreSQL re-checks the condition after waiting for a
        # concurrent updater's row lock; SQLite writers are serialised by BEGIN IMMEDIATE.
        result = await self.session.execute(
            update(refresh_tokens)
            .where(
                refresh_tokens.c.id == token_id,
                refresh_tokens.c.rotated_at.is_(None),
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(rotated_at=at)
        )
        return _rowcount(result) == 1

    async def revoke_family(self, family_id: str, *, at: datetime) -> None:
        await self.session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def delete_expired(self, *, before: datetime) -> int:
        result = await self.session.execute(
            delete(refresh_tokens).where(refresh_tokens.c.expires_at <= before)
        )
        return _rowcount(result)


def _key(row: RowMapping) -> SigningKey:
    return SigningKey(
        kid=row["kid"],
        public_jwk=json.loads(row["public_jwk"]),
        sealed_private_key=bytes(row["sealed_private_key"]),
        created_at=row["created_at"],
        retired_at=row["retired_at"],
        publish_until=row["publish_until"],
    )


class SqlSigningKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: SigningKey) -> None:
        await self.session.execute(
            insert(signing_keys).values(
                kid=key.kid,
                public_jwk=json.dumps(key.public_jwk, sort_keys=True),
                sealed_private_key=key.sealed_private_key,
                created_at=key.created_at,
                retired_at=key.retired_at,
                publish_until=key.publish_until,
            )
        )

    async def all(self) -> list[SigningKey]:
        result = await self.session.execute(
            select(signing_keys).order_by(signing_keys.c.created_at, signing_keys.c.kid)
        )
        return [_key(row) for row in result.mappings()]

    async def retire(self, key: SigningKey) -> bool:
        result = await self.session.execute(
            update(signing_keys)
            .where(signing_keys.c.kid == key.kid, signing_keys.c.retired_at.is_(None))
            .values(retired_at=key.retired_at, publish_until=key.publish_until)
        )
        return _rowcount(result) == 1

    async def delete_unpublished(self, *, before: datetime) -> int:
        result = await self.session.execute(
            delete(signing_keys).where(
                signing_keys.c.retired_at.is_not(None), signing_keys.c.publish_until <= before
            )
        )
        return _rowcount(result)


class SqlLoginAttemptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record_failure(self, subjects: Sequence[str], *, at: datetime) -> None:
        await self.session.execute(
            insert(login_failures),
            [{"id": str(uuid.uuid4()), "subject": s, "failed_at": at} for s in subjects],
        )

    async def failures_since(self, subject: str, *, since: datetime) -> list[datetime]:
        result = await self.session.execute(
            select(login_failures.c.failed_at)
            .where(login_failures.c.subject == subject, login_failures.c.failed_at > since)
            .order_by(login_failures.c.failed_at)
        )
        return list(result.scalars())

    async def clear(self, subject: str) -> None:
        await self.session.execute(
            delete(login_failures).where(login_failures.c.subject == subject)
        )

    async def delete_older_than(self, before: datetime) -> int:
        result = await self.session.execute(
            delete(login_failures).where(login_failures.c.failed_at <= before)
        )
        return _rowcount(result)


class SqlIdentityUnitOfWork:
    """A unit of work on one database session; rolls back unless committed.

    Recorded events go into the outbox in the same transaction; `on_commit` (the relay's
    notify) runs after a commit that had some.
    """

    users: SqlUserRepository
    refresh_tokens: SqlRefreshTokenRepository
    signing_keys: SqlSigningKeyRepository
    login_attempts: SqlLoginAttemptRepository

    def __init__(
        self, database: Database, *, write: bool, on_commit: Callable[[], None] | None = None
    ) -> None:
        self._factory = database.write_sessions if write else database.sessions
        self._on_commit = on_commit
        self.events: list[UserRegistered] = []
        self._pending: list[UserRegistered] = []

    async def __aenter__(self) -> SqlIdentityUnitOfWork:
        self._session = self._factory()
        self._pending = []
        self.users = SqlUserRepository(self._session)
        self.refresh_tokens = SqlRefreshTokenRepository(self._session)
        self.signing_keys = SqlSigningKeyRepository(self._session)
        self.login_attempts = SqlLoginAttemptRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pending = []
        await self._session.rollback()
        await self._session.close()

    def record(self, event: UserRegistered) -> None:
        self._pending.append(event)

    async def commit(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await record_events(self._session, [user_registered(e) for e in pending])
        await self._session.commit()
        self.events.extend(pending)
        if pending and self._on_commit is not None:
            self._on_commit()


def user_registered(event: UserRegistered) -> Envelope:
    """`identity.user.registered.v1` (docs/events.md); never carries the password."""
    return Envelope(
        type="identity.user.registered.v1",
        source="identity",
        subject=event.user_id,
        data={"user_id": event.user_id, "email": event.email, "name": event.name},
        time=event.occurred_at,
    )
