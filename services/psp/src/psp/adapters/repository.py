"""The psp's storage on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, cast

from sqlalchemy import CursorResult, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database
from psp.adapters.orm import authorizations, idempotency_keys
from psp.domain.model import Authorization, AuthorizationStatus
from psp.service_layer.ports import IdempotencyRecord


def _values(authorization: Authorization) -> dict[str, Any]:
    return {
        "id": authorization.id,
        "idempotency_key": authorization.idempotency_key,
        "reference": authorization.reference,
        "token": authorization.token,
        "amount": authorization.amount,
        "currency": authorization.currency,
        "status": authorization.status.value,
        "decline_code": authorization.decline_code,
        "captured_amount": authorization.captured_amount,
        "refunded_amount": authorization.refunded_amount,
        "created_at": authorization.created_at,
        "updated_at": authorization.updated_at,
    }


def _authorization(row: RowMapping) -> Authorization:
    return Authorization(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        reference=row["reference"],
        token=row["token"],
        amount=row["amount"],
        currency=row["currency"],
        status=AuthorizationStatus(row["status"]),
        decline_code=row["decline_code"],
        captured_amount=row["captured_amount"],
        refunded_amount=row["refunded_amount"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class SqlAuthorizationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, authorization: Authorization) -> None:
        await self.session.execute(insert(authorizations).values(_values(authorization)))

    async def save(self, authorization: Authorization) -> None:
        values = _values(authorization)
        for fixed in ("id", "idempotency_key", "created_at"):
            del values[fixed]
        await self.session.execute(
            update(authorizations).where(authorizations.c.id == authorization.id).values(values)
        )

    async def get(self, authorization_id: str, *, lock: bool = False) -> Authorization | None:
        statement = select(authorizations).where(authorizations.c.id == authorization_id)
        if lock:  # concurrent captures/voids/refunds of one authorization take turns
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).mappings().first()
        return _authorization(row) if row else None

    async def get_by_idempotency_key(self, key: str) -> Authorization | None:
        statement = select(authorizations).where(authorizations.c.idempotency_key == key)
        row = (await self.session.execute(statement)).mappings().first()
        return _authorization(row) if row else None

    async def find_by_reference(self, reference: str) -> list[Authorization]:
        statement = (
            select(authorizations)
            .where(authorizations.c.reference == reference)
            .order_by(authorizations.c.created_at, authorizations.c.id)
        )
        return [_authorization(row) for row in (await self.session.execute(statement)).mappings()]

    async def all(self) -> list[Authorization]:
        statement = select(authorizations).order_by(
            authorizations.c.created_at, authorizations.c.id
        )
        return [_authorization(row) for row in (await self.session.execute(statement)).mappings()]


class SqlIdempotencyStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, record: IdempotencyRecord) -> bool:
        values = {
            "key": record.key,
            "method": record.method,
            "path": record.path,
            "fingerprint": record.fingerprint,
            "created_at": record.created_at,
        }
        # On PostgreSQL a concurrent claim of the same key waits here for the owner's
        # transaction, then inserts nothing (or claims it, if the owner rolled back).
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            statement: Any = postgresql.insert(idempotency_keys).on_conflict_do_nothing()
        else:
            statement = sqlite.insert(idempotency_keys).on_conflict_do_nothing()
        result = cast(CursorResult[Any], await self.session.execute(statement.values(values)))
        return result.rowcount == 1

    async def get(self, key: str) -> IdempotencyRecord | None:
        statement = select(idempotency_keys).where(idempotency_keys.c.key == key)
        row = (await self.session.execute(statement)).mappings().first()
        if row is None:
            return None
        return IdempotencyRecord(
            key=row["key"],
            method=row["method"],
            path=row["path"],
            fingerprint=row["fingerprint"],
            created_at=row["created_at"],
            status=row["status"],
            body=row["body"],
        )

    async def complete(self, key: str, *, status: int, body: str) -> None:
        await self.session.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == key)
            .values(status=status, body=body)
        )


class SqlPspUnitOfWork:
    """A unit of work on one database session; rolls back unless committed."""

    authorizations: SqlAuthorizationRepository
    keys: SqlIdempotencyStore

    def __init__(self, database: Database, *, write: bool) -> None:
        self._factory = database.write_sessions if write else database.sessions

    async def __aenter__(self) -> SqlPspUnitOfWork:
        self._session = self._factory()
        self.authorizations = SqlAuthorizationRepository(self._session)
        self.keys = SqlIdempotencyStore(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._session.rollback()
        await self._session.close()

    async def commit(self) -> None:
        await self._session.commit()
