"""The processor: the only code that calls the psp, always outside a database transaction.

A command handler only records an `Operation` (in the inbox transaction) and wakes the
processor after the commit. For each woken order the processor then

1. reads the payment and its next operation (a read, no transaction kept open);
2. calls the psp with the operation's idempotency key, holding no database transaction
   (SQLite has one writer; a slow psp must not stall every other write);
3. in a second, short write transaction re-reads the payment (locked), checks the operation
   is still the one it called for, records the outcome (state, ledger entry, reply event in
   the outbox) and commits.

A crash between 2 and 3 leaves the operation requested; it is called again with the same
key, and the psp answers what it did the first time, so nothing is charged twice.

When a call gives no answer the operation waits with exponential backoff (and jitter). If
the call may have acted (a timeout, a 5xx) the operation is `unknown`: the next attempt
first asks the psp what happened (the authorization created with the key; the state of
the authorization for a capture, void or refund) and only sends again if nothing did. A
sweep finds due operations every `sweep_interval`: after a restart, on another replica, or
when a wake-up was lost. A replica that lost a race notices in step 3 and drops its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from prometheus_client import Counter, Gauge

from chassis.tracing import tracer
from payments.domain.model import Operation, OperationKind, OperationStatus, Payment, PaymentStatus
from payments.errors import ProviderRefusedError, ProviderUnavailableError
from payments.service_layer import messages
from payments.service_layer.ports import (
    Clock,
    Message,
    PaymentProvider,
    ProviderAuthorization,
    UnitOfWorkFactory,
)

log = structlog.get_logger("payments.processor")

PSP_OPERATIONS = Counter(
    "mercato_payments_psp_operations_total",
    "Attempts at psp operations by outcome: settled, refused, unanswered or unknown "
    "(unanswered, and it may have acted)",
    ["operation", "outcome"],
)
DUE_OPERATIONS = Gauge(
    "mercato_payments_due_operations",
    "Payments with a psp operation due, as the last sweep found them (capped by its batch)",
)

__all__ = ["Backoff", "PaymentProcessor", "Refused", "Settled", "Unanswered", "call_psp", "record"]


@dataclass(frozen=True)
class Settled:
    """It happened: `amount` moved (or nothing had to), `psp_reference` names the hold."""

    amount: int
    psp_reference: str | None = None


@dataclass(frozen=True)
class Refused:
    reason: str


@dataclass(frozen=True)
class Unanswered:
    error: str
    outcome_unknown: bool


Result = Settled | Refused | Unanswered


class Backoff:
    """Capped exponential backoff with jitter between attempts at one operation."""

    def __init__(
        self, base: float = 0.5, cap: float = 30.0, *, rng: random.Random | None = None
    ) -> None:
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (between ½ and all of it)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(attempts - 1, 32))
        return ceiling * (0.5 + self._rng.random() / 2)


async def call_psp(provider: PaymentProvider, payment: Payment, op: Operation) -> Result:
    """Perform `op` at the psp (or settle it without a call when nothing needs doing)."""
    try:
        return await _call(provider, payment, op)
    except ProviderRefusedError as refusal:
        return Refused(refusal.reason)
    except ProviderUnavailableError as failure:
        unknown = failure.outcome_unknown or op.status is OperationStatus.UNKNOWN
        return Unanswered(failure.detail, outcome_unknown=unknown)


async def _call(provider: PaymentProvider, payment: Payment, op: Operation) -> Result:
    reference = payment.psp_authorization_id
    reconciling = op.status is OperationStatus.UNKNOWN
    match op.kind:
        case OperationKind.AUTHORIZE:
            if payment.amount == 0:
                return Settled(0)
            found = await provider.find_authorization(op.idempotency_key) if reconciling else None
            if found is None:
                found = await provider.authorize(
                    idempotency_key=op.idempotency_key,
                    amount=payment.amount,
                    currency=payment.currency,
                    token=payment.payment_token or "",
                    reference=payment.order_id,
                )
            return _authorization_result(found)
        case OperationKind.VOID:
            if payment.status in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED):
                return Refused("already_captured")
            if not payment.holds_authorization or reference is None:
                return Settled(0)  # nothing is held: declined, voided, or nothing to hold
            if reconciling and (await provider.get_authorization(reference)).status == "voided":
                return Settled(payment.authorized_amount, reference)
            await provider.void(reference, idempotency_key=op.idempotency_key)
            return Settled(payment.authorized_amount, reference)
        case OperationKind.CAPTURE:
            if payment.status in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED):
                return Settled(payment.captured_amount, reference)
            if not payment.holds_authorization:
                return Refused("not_authorized")
            if reference is None:
                return Settled(0)
            if reconciling:
                state = await provider.get_authorization(reference)
                if state.status in ("captured", "refunded"):
                    return Settled(state.captured_amount, reference)
            done = await provider.capture(
                reference, amount=payment.authorized_amount, idempotency_key=op.idempotency_key
            )
            return Settled(done.captured_amount, reference)
        case OperationKind.REFUND:
            amount = payment.refundable
            if amount == 0 or reference is None:
                return Settled(0)
            if reconciling:
                state = await provider.get_authorization(reference)
                if state.refunded_amount >= payment.refunded_amount + amount:
                    return Settled(amount, reference)
            await provider.refund(reference, amount=amount, idempotency_key=op.idempotency_key)
            return Settled(amount, reference)


def _outcome_label(result: Result) -> str:
    if isinstance(result, Unanswered):
        return "unknown" if result.outcome_unknown else "unanswered"
    return "settled" if isinstance(result, Settled) else "refused"


def _authorization_result(found: ProviderAuthorization) -> Result:
    if found.status == "declined":
        return Refused(found.decline_code or "card_declined")
    return Settled(found.amount, found.id)


def record(
    payment: Payment, op: Operation, result: Result, *, retry_in: float, clock: Clock
) -> list[Message]:
    """Apply `result` of `op` to `payment`; the messages to publish with it."""
    now = clock()
    cause = op.cause
    match result:
        case Unanswered(error=error, outcome_unknown=unknown):
            payment.attempt_failed(
                op,
                error,
                outcome_unknown=unknown,
                retry_at=now + timedelta(seconds=retry_in),
                now=now,
            )
            return []
        case Settled(amount=amount, psp_reference=psp_reference):
            match op.kind:
                case OperationKind.AUTHORIZE:
                    payment.authorization_succeeded(op, psp_reference, now)
                    return [messages.authorized(payment, cause)]
                case OperationKind.VOID:
                    payment.void_succeeded(op, now)
                    return [messages.voided(payment.order_id, cause)]
                case OperationKind.CAPTURE:
                    payment.capture_succeeded(op, amount, now)
                    return [messages.captured(payment, amount, cause)]
                case OperationKind.REFUND:
                    payment.refund_succeeded(op, amount, now)
                    return [messages.refunded(payment, amount, cause)]
        case Refused(reason=reason):
            match op.kind:
                case OperationKind.AUTHORIZE:
                    if reason not in messages.DECLINE_REASONS:
                        reason = "processing_error"
                    payment.authorization_declined(op, reason, now)
                    return [messages.declined(payment, reason, cause)]
                case OperationKind.REFUND:
                    payment.operation_failed(op, reason, now)
                    return [messages.refund_failed(payment.order_id, reason, cause)]
                case _:
                    # The saga has no failure reply for these: it is a bug or an operator's job.
                    log.error(
                        "psp refused an operation",
                        order_id=payment.order_id,
                        operation=op.kind.value,
                        reason=reason,
                    )
                    payment.operation_failed(op, reason, now)
                    return []
    raise AssertionError(f"unhandled result {result!r}")  # pragma: no cover


class PaymentProcessor:
    """Runs the psp operations of woken orders in the background (one task per order)."""

    def __init__(
        self,
        *,
        reader: UnitOfWorkFactory,
        writer: UnitOfWorkFactory,
        provider: PaymentProvider,
        clock: Clock,
        backoff: Backoff | None = None,
        on_commit: Callable[[], None] = lambda: None,
        max_concurrent: int = 32,
        sweep_interval: float = 2.0,
        sweep_batch: int = 200,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._provider = provider
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._on_commit = on_commit
        self._slots = asyncio.Semaphore(max_concurrent)
        self._sweep_interval = sweep_interval
        self._sweep_batch = sweep_batch
        # order id → the trace context of what woke it, so its psp calls join that trace
        self._woken: dict[str, Context] = {}
        self._wakeup = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._loop_task: asyncio.Task[None] | None = None

    # -- driving it --------------------------------------------------------------------

    def wake(self, order_id: str) -> None:
        """Look at `order_id` soon (call after committing an operation for it)."""
        self._woken[order_id] = otel_context.get_current()
        self._wakeup.set()

    async def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(
                self._dispatch_forever(), name="payments-processor"
            )

    async def stop(self) -> None:
        task, self._loop_task = self._loop_task, None
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = [t for t in (task, *self._running.values()) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def process(self, order_id: str) -> None:
        """Run the order's due operations, one after another, until none is due."""
        while await self.step(order_id):
            pass

    async def sweep(self) -> list[str]:
        """The orders with due operations (the reconciler's view); wakes each of them."""
        async with self._reader() as uow:
            due = await uow.payments.due(self._clock(), limit=self._sweep_batch)
        DUE_OPERATIONS.set(len(due))
        for order_id in due:
            self.wake(order_id)
        return due

    # -- one operation -----------------------------------------------------------------

    async def step(self, order_id: str) -> bool:
        """Run the order's next operation if due; True when the one after may be due too."""
        async with self._reader() as uow:
            payment = await uow.payments.get(order_id)
        op = payment.head() if payment is not None else None
        if payment is None or op is None or op.next_attempt_at > self._clock():
            return False

        result = await call_psp(self._provider, payment, op)  # no transaction open here
        PSP_OPERATIONS.labels(op.kind.value, _outcome_label(result)).inc()

        retry_in = self._backoff.delay(op.attempts + 1)
        async with self._writer() as uow:
            current = await uow.payments.get(order_id, lock=True)
            head = current.head() if current is not None else None
            if (
                current is None
                or head is None
                or (head.id, head.attempts, head.status) != (op.id, op.attempts, op.status)
            ):
                return False  # someone else (another replica) got there first
            for message in record(current, head, result, retry_in=retry_in, clock=self._clock):
                uow.publish(message)
            await uow.payments.save(current)
            await uow.commit()
        self._on_commit()
        if isinstance(result, Unanswered):
            log.warning(
                "psp call failed; will retry",
                order_id=order_id,
                operation=op.kind.value,
                attempt=head.attempts,
                retry_in=round(retry_in, 3),
                outcome_unknown=result.outcome_unknown,
                error=result.error,
            )
            self._wake_later(order_id, retry_in)
            return False
        return True

    # -- the background loop -----------------------------------------------------------

    def _wake_later(self, order_id: str, delay: float) -> None:
        if self._loop_task is None:
            return
        loop = asyncio.get_running_loop()
        traced = otel_context.get_current()

        def fire() -> None:
            self._timers.discard(timer)
            attached = otel_context.attach(traced)  # the retry stays in the same trace
            try:
                self.wake(order_id)
            finally:
                otel_context.detach(attached)

        timer = loop.call_later(delay, fire)
        self._timers.add(timer)

    async def _dispatch_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while True:
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + self._sweep_interval
                try:
                    await self.sweep()
                except Exception:  # the database may be down: sweep again later
                    log.exception("payments sweep failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(next_sweep - loop.time(), 0)):
                    await self._wakeup.wait()
            self._wakeup.clear()
            woken, self._woken = self._woken, {}
            for order_id, traced in woken.items():
                if order_id in self._running:
                    self._again.add(order_id)
                else:
                    self._running[order_id] = asyncio.create_task(
                        self._run(order_id, traced), name=f"payment-{order_id}"
                    )

    async def _run(self, order_id: str, traced: Context) -> None:
        try:
            while True:
                self._again.discard(order_id)
                async with self._slots:
                    with tracer().start_as_current_span(
                        "payments: process psp operations",
                        context=traced,
                        attributes={"mercato.order_id": order_id},
                    ):
                        try:
                            await self.process(order_id)
                        except Exception:  # retried by the next sweep
                            log.exception("processing a payment failed", order_id=order_id)
                if order_id not in self._again:
                    return
        finally:
            self._running.pop(order_id, None)
