"""In-memory fakes of payments' ports, for fast unit tests (same contract as the real ones)."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType

from payments.domain.model import LedgerEntry, Payment
from payments.errors import ProviderRefusedError, ProviderUnavailableError
from payments.service_layer.ports import Message, ProviderAuthorization


class FakeClock:
    """A `Clock` that moves only when told to."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class InMemoryPaymentRepository:
    def __init__(self) -> None:
        self.rows: dict[str, Payment] = {}
        self.entries: list[LedgerEntry] = []

    async def add(self, payment: Payment) -> None:
        if payment.order_id in self.rows:
            raise ValueError(f"a payment for order {payment.order_id} exists already")
        await self.save(payment)

    async def get(self, order_id: str, *, lock: bool = False) -> Payment | None:
        found = self.rows.get(order_id)
        return copy.deepcopy(found) if found is not None else None

    async def save(self, payment: Payment) -> None:
        self.entries.extend(payment.new_entries)
        payment.new_entries.clear()
        self.rows[payment.order_id] = copy.deepcopy(payment)

    async def ledger(self, order_id: str) -> list[LedgerEntry]:
        return [e for e in self.entries if e.order_id == order_id]

    async def all(self) -> list[tuple[Payment, list[LedgerEntry]]]:
        ordered = sorted(self.rows.values(), key=lambda p: (p.created_at, p.order_id))
        return [(copy.deepcopy(p), await self.ledger(p.order_id)) for p in ordered]

    async def due(self, now: datetime, *, limit: int) -> list[str]:
        due = [
            (min(op.next_attempt_at for op in p.pending_operations), p.order_id)
            for p in self.rows.values()
            if any(op.next_attempt_at <= now for op in p.pending_operations)
        ]
        return [order_id for _, order_id in sorted(due)[:limit]]


class InMemoryPaymentsUnitOfWork:
    """Stages writes in copies and publishes them (and the messages) on commit."""

    def __init__(self) -> None:
        self.committed = InMemoryPaymentRepository()
        self.published: list[Message] = []
        self.commits = 0

    async def __aenter__(self) -> InMemoryPaymentsUnitOfWork:
        self.payments = InMemoryPaymentRepository()
        self.payments.rows = copy.deepcopy(self.committed.rows)
        self.payments.entries = list(self.committed.entries)
        self._outgoing: list[Message] = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def publish(self, message: Message) -> None:
        self._outgoing.append(message)

    async def commit(self) -> None:
        self.committed.rows = copy.deepcopy(self.payments.rows)
        self.committed.entries = list(self.payments.entries)
        self.published.extend(self._outgoing)
        self._outgoing = []
        self.commits += 1


@dataclass
class FakePaymentProvider:
    """A psp in memory with the real one's rules: tokens decide, keys make calls idempotent.

    `failures` scripts what the next calls do instead of answering: "unavailable" (not
    sent: connection refused), "error" (a 5xx: it may have acted; here it did not) or
    "timeout_after_charge" (it acts, then the answer is lost).
    """

    failures: list[str] = field(default_factory=list)
    authorizations: dict[str, ProviderAuthorization] = field(default_factory=dict)
    answers: dict[str, ProviderAuthorization] = field(default_factory=dict)  # by idempotency key
    calls: list[str] = field(default_factory=list)

    def _fail_before(self) -> str | None:
        failure = self.failures.pop(0) if self.failures else None
        if failure == "unavailable":
            raise ProviderUnavailableError("connection refused", outcome_unknown=False)
        if failure == "error":
            raise ProviderUnavailableError("psp answered HTTP 500", outcome_unknown=True)
        return failure

    def _answer(
        self, failure: str | None, key: str, answer: ProviderAuthorization
    ) -> ProviderAuthorization:
        self.answers.setdefault(key, answer)
        if failure == "timeout_after_charge":
            raise ProviderUnavailableError("timed out", outcome_unknown=True)
        return self.answers[key]

    async def authorize(
        self, *, idempotency_key: str, amount: int, currency: str, token: str, reference: str
    ) -> ProviderAuthorization:
        self.calls.append(f"authorize {idempotency_key}")
        failure = self._fail_before()
        if idempotency_key in self.answers:
            return self._answer(failure, idempotency_key, self.answers[idempotency_key])
        codes = {
            "tok_visa": None,
            "tok_chargeDeclined": "card_declined",
            "tok_insufficientFunds": "insufficient_funds",
        }
        if token not in codes:
            raise ProviderRefusedError("invalid_token")
        code = codes[token]
        created = ProviderAuthorization(
            id=f"auth_{uuid.uuid4().hex}",
            status="declined" if code else "authorized",
            decline_code=code,
            amount=amount,
            currency=currency,
            captured_amount=0,
            refunded_amount=0,
        )
        self.authorizations[created.id] = created
        return self._answer(failure, idempotency_key, created)

    async def find_authorization(self, idempotency_key: str) -> ProviderAuthorization | None:
        self.calls.append(f"find {idempotency_key}")
        self._fail_before()
        found = self.answers.get(idempotency_key)
        return self.authorizations[found.id] if found is not None else None

    async def get_authorization(self, authorization_id: str) -> ProviderAuthorization:
        self.calls.append(f"get {authorization_id}")
        self._fail_before()
        return self.authorizations[authorization_id]

    async def _change(
        self, key: str, authorization_id: str, status: str, *, captured: int = 0, refunded: int = 0
    ) -> ProviderAuthorization:
        failure = self._fail_before()
        if key not in self.answers:
            current = self.authorizations[authorization_id]
            allowed = {"captured": "authorized", "voided": "authorized", "refunded": "captured"}
            if current.status != allowed[status]:
                raise ProviderRefusedError("invalid_state")
            changed = replace(
                current,
                status=status,
                captured_amount=current.captured_amount + captured,
                refunded_amount=current.refunded_amount + refunded,
            )
            self.authorizations[authorization_id] = changed
            return self._answer(failure, key, changed)
        return self._answer(failure, key, self.answers[key])

    async def capture(
        self, authorization_id: str, *, amount: int, idempotency_key: str
    ) -> ProviderAuthorization:
        self.calls.append(f"capture {idempotency_key}")
        return await self._change(idempotency_key, authorization_id, "captured", captured=amount)

    async def void(self, authorization_id: str, *, idempotency_key: str) -> ProviderAuthorization:
        self.calls.append(f"void {idempotency_key}")
        return await self._change(idempotency_key, authorization_id, "voided")

    async def refund(
        self, authorization_id: str, *, amount: int, idempotency_key: str
    ) -> ProviderAuthorization:
        self.calls.append(f"refund {idempotency_key}")
        return await self._change(idempotency_key, authorization_id, "refunded", refunded=amount)
