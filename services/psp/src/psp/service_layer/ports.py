"""What the psp's service layer needs from storage, as Protocols named by role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol

from psp.domain.model import Authorization


@dataclass(frozen=True)
class IdempotencyRecord:
    """A request made with an Idempotency-Key, and the answer it got once it completed."""

    key: str
    method: str
    path: str
    fingerprint: str  # hash of the request's method, path and body
    created_at: datetime
    status: int | None = None  # None until the request's transaction commits its answer
    body: str | None = None  # the answer, JSON


class AuthorizationRepository(Protocol):
    async def add(self, authorization: Authorization) -> None: ...
    async def save(self, authorization: Authorization) -> None: ...
    async def get(self, authorization_id: str, *, lock: bool = False) -> Authorization | None:
        """`lock`: hold the row until the transaction ends (for a change)."""

    async def get_by_idempotency_key(self, key: str) -> Authorization | None: ...
    async def find_by_reference(self, reference: str) -> list[Authorization]: ...
    async def all(self) -> list[Authorization]: ...


class IdempotencyStore(Protocol):
    async def claim(self, record: IdempotencyRecord) -> bool:
        """Insert `record` unless its key exists: True when this transaction owns the key.

        A concurrent claim of the same key waits for the owner's transaction to end."""

    async def get(self, key: str) -> IdempotencyRecord | None: ...
    async def complete(self, key: str, *, status: int, body: str) -> None: ...


class PspUnitOfWork(Protocol):
    """One transaction over authorizations and idempotency keys."""

    @property
    def authorizations(self) -> AuthorizationRepository: ...

    @property
    def keys(self) -> IdempotencyStore: ...

    async def __aenter__(self) -> PspUnitOfWork: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...
