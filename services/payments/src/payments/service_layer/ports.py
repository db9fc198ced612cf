"""What payments' service layer needs from the outside world, as Protocols named by role."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from payments.domain.model import Cause, LedgerEntry, Payment

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Message:
    """An event or reply to publish with the unit of work's commit (subject: the order)."""

    type: str
    order_id: str
    data: dict[str, Any]
    cause: Cause | None = None


class PaymentRepository(Protocol):
    async def add(self, payment: Payment) -> None: ...
    async def get(self, order_id: str, *, lock: bool = False) -> Payment | None:
        """With its operations; `lock` holds it until the transaction ends (for a change)."""

    async def save(self, payment: Payment) -> None:
        """Store its state, its operations, and append its new ledger entries."""

    async def ledger(self, order_id: str) -> list[LedgerEntry]: ...
    async def all(self) -> list[tuple[Payment, list[LedgerEntry]]]: ...
    async def due(self, now: datetime, *, limit: int) -> list[str]:
        """Orders with an unfinished operation whose next attempt is due, most overdue first."""


class PaymentsUnitOfWork(Protocol):
    """One transaction: payments changed and messages published commit together."""

    @property
    def payments(self) -> PaymentRepository: ...

    def publish(self, message: Message) -> None: ...

    async def __aenter__(self) -> PaymentsUnitOfWork: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...


UnitOfWorkFactory = Callable[[], PaymentsUnitOfWork]


@dataclass(frozen=True)
class ProviderAuthorization:
    """An authorization as the psp reports it."""

    id: str
    status: str  # authorized, declined, captured, voided, refunded
    decline_code: str | None
    amount: int
    currency: str
    captured_amount: int
    refunded_amount: int


class PaymentProvider(Protocol):
    """The psp. Every call that changes something carries an idempotency key.

    Raises `ProviderRefusedError` when the psp says no, `ProviderUnavailableError` when
    there is no usable answer (with `outcome_unknown` when the call may have acted).
    """

    async def authorize(
        self, *, idempotency_key: str, amount: int, currency: str, token: str, reference: str
    ) -> ProviderAuthorization: ...
    async def find_authorization(self, idempotency_key: str) -> ProviderAuthorization | None: ...
    async def get_authorization(self, authorization_id: str) -> ProviderAuthorization: ...
    async def capture(
        self, authorization_id: str, *, amount: int, idempotency_key: str
    ) -> ProviderAuthorization: ...
    async def void(
        self, authorization_id: str, *, idempotency_key: str
    ) -> ProviderAuthorization: ...
    async def refund(
        self, authorization_id: str, *, amount: int, idempotency_key: str
    ) -> ProviderAuthorization: ...
