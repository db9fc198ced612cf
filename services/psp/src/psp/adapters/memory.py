"""In-memory fakes of the psp's ports, for fast unit tests (same contract as the SQL ones)."""

from __future__ import annotations

from dataclasses import replace
from types import TracebackType

from psp.domain.model import Authorization
from psp.service_layer.ports import IdempotencyRecord


class InMemoryAuthorizationRepository:
    def __init__(self) -> None:
        self.rows: dict[str, Authorization] = {}

    async def add(self, authorization: Authorization) -> None:
        if any(a.idempotency_key == authorization.idempotency_key for a in self.rows.values()):
            raise ValueError(f"duplicate idempotency key {authorization.idempotency_key!r}")
        self.rows[authorization.id] = authorization

    async def save(self, authorization: Authorization) -> None:
        self.rows[authorization.id] = authorization

    async def get(self, authorization_id: str, *, lock: bool = False) -> Authorization | None:
        return self.rows.get(authorization_id)

    async def get_by_idempotency_key(self, key: str) -> Authorization | None:
        return next((a for a in self.rows.values() if a.idempotency_key == key), None)

    async def find_by_reference(self, reference: str) -> list[Authorization]:
        return sorted(
            (a for a in self.rows.values() if a.reference == reference),
            key=lambda a: (a.created_at, a.id),
        )

    async def all(self) -> list[Authorization]:
        return sorted(self.rows.values(), key=lambda a: (a.created_at, a.id))


class InMemoryIdempotencyStore:
    def __init__(self) -> None:
        self.records: dict[str, IdempotencyRecord] = {}

    async def claim(self, record: IdempotencyRecord) -> bool:
        if record.key in self.records:
            return False
        self.records[record.key] = record
        return True

    async def get(self, key: str) -> IdempotencyRecord | None:
        return self.records.get(key)

    async def complete(self, key: str, *, status: int, body: str) -> None:
        self.records[key] = replace(self.records[key], status=status, body=body)


class InMemoryPspUnitOfWork:
    """Stages writes in copies and publishes them on commit, like a real transaction."""

    def __init__(self) -> None:
        self.committed_authorizations: dict[str, Authorization] = {}
        self.committed_keys: dict[str, IdempotencyRecord] = {}
        self.commits = 0

    async def __aenter__(self) -> InMemoryPspUnitOfWork:
        self.authorizations = InMemoryAuthorizationRepository()
        self.authorizations.rows = dict(self.committed_authorizations)
        self.keys = InMemoryIdempotencyStore()
        self.keys.records = dict(self.committed_keys)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        self.committed_authorizations = dict(self.authorizations.rows)
        self.committed_keys = dict(self.keys.records)
        self.commits += 1
