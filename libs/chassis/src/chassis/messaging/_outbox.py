"""Transactional outbox: events are stored with the state change, then relayed to the broker.

Recording. `record_events(session, envelopes)` inserts outbox rows in the caller's own
transaction, so a unit of work commits its state change and its events together or not at
all. After committing, the service calls `relay.notify()` so the events leave at once;
polling catches everything else (other processes' commits, restarts, retries).

Order. Events are published in `seq` (insertion) order per subject. A batch of unsent rows is
split into waves: wave i holds the i-th row of every subject in the batch, so a wave never
holds two rows of one subject. Waves run one after another and each wave is published with
`bus.publish_many` (hundreds in flight when many subjects are pending). If a row of subject S
fails, S's later rows are left out of the rest of the batch: row k+1 can never be accepted by
the broker before row k. A row is marked sent only after the broker acknowledged it; a crash
between the ack and the UPDATE just publishes it again later. Duplicates are expected and
harmless: consumers deduplicate by envelope id (`Inbox`), and brokers by message id.

Insertion order is the order that is kept, so two transactions that record events for the same
subject must not overlap. They don't when both write the aggregate the subject names (its row
lock, or SQLite's single writer, serialises them); a service that records events for a
subject without writing the aggregate must serialise those writers itself.

Several relays. On PostgreSQL every replica may run a relay. A pass takes a transaction-level
advisory lock per subject (`pg_try_advisory_xact_lock`, skipping subjects another relay holds),
then reads the unsent rows of the subjects it locked, publishes and marks them, and commits,
which releases the locks. A relay that takes a subject's lock therefore sees every row the
previous holder marked sent, and at most one relay publishes a subject at any time: no event
is published twice and per-subject order holds. On SQLite one relay per database publishes:
a lock file next to the database elects it, the others stand by and take over when it exits.

Failures. Rows that fail keep `sent_at` NULL and record `attempts` and `last_error`; their
subject waits with exponential backoff (capped) while other subjects carry on. When nothing at
all gets through (the broker is down) or a pass raises, the whole relay backs off too; a
notify still wakes it, so fresh events are tried at once. The relay never dies of an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Gauge
from sqlalchemy import (
    CursorResult,
    Table,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from chassis._database import Database
from chassis.messaging._bus import MessageBus
from chassis.messaging._envelope import Envelope
from chassis.messaging._tables import LAST_ERROR_LENGTH, messaging_tables
from chassis.resilience._clock import SYSTEM_CLOCK, Clock, Sleep
from chassis.tracing import context_from_traceparent, traceparent_of, tracer

__all__ = [
    "OUTBOX_BACKLOG",
    "OUTBOX_OLDEST_UNSENT_AGE",
    "OUTBOX_PUBLISHED",
    "OUTBOX_PUBLISH_FAILURES",
    "OutboxRelay",
    "record_events",
]

OUTBOX_PUBLISHED = Counter(
    "mercato_outbox_published_total",
    "Outbox rows the broker acknowledged",
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "mercato_outbox_publish_failures_total",
    "Outbox rows whose publication failed (they are retried)",
)
OUTBOX_BACKLOG = Gauge(
    "mercato_outbox_backlog",
    "Outbox rows not yet published",
)
OUTBOX_OLDEST_UNSENT_AGE = Gauge(
    "mercato_outbox_oldest_unsent_age_seconds",
    "Age of the oldest outbox row not yet published (0 when none)",
)

_log = structlog.get_logger("chassis.messaging")

# Subjects in backoff are left out of the batch query, up to this many (the rest are skipped
# after reading): keeps the statement small when a broker outage fails thousands of subjects.
_MAX_EXCLUDED = 1000
_GAUGE_INTERVAL = 1.0
_MAX_RUNS = 32  # sent rows are marked by up to this many seq ranges, else by an IN list


def _outbox() -> Table:
    return messaging_tables()[0]


def _runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7, 8] → [(1, 3), (7, 8)]: the same rows, as inclusive ranges."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


async def record_events(session: AsyncSession, envelopes: Iterable[Envelope]) -> None:
    """Add `envelopes` to the outbox in the caller's transaction (it commits them).

    Each message gets a producer span, child of the current span (the request or message
    being handled) or else of the trace the envelope already names; the envelope carries
    that span's `traceparent`, so its consumers continue the same trace.
    """
    now = datetime.now(UTC)
    rows = [
        {
            "id": traced.id,
            "type": traced.type,
            "subject": traced.subject,
            "envelope": traced.to_bytes().decode(),
            "created_at": now,
            "attempts": 0,
        }
        for traced in map(_produced, envelopes)
    ]
    if rows:
        await session.execute(insert(_outbox()), rows)


def _produced(envelope: Envelope) -> Envelope:
    parent = None
    if not trace.get_current_span().get_span_context().is_valid:
        parent = context_from_traceparent(envelope.traceparent)
    span = tracer().start_span(
        f"publish {envelope.type}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.operation.type": "publish",
            "messaging.destination.name": envelope.type,
            "messaging.message.id": envelope.id,
            "messaging.message.conversation_id": envelope.correlation_id or envelope.id,
        },
    )
    # Ends now: the message is committed with its transaction; the relay sends it later.
    span.end()
    return envelope.with_trace(traceparent_of(span) or envelope.traceparent)


@dataclass(frozen=True)
class _Row:
    seq: int
    subject: str
    attempts: int
    envelope: str


@dataclass
class _Pass:
    claimed: int = 0
    sent: list[int] = field(default_factory=list)
    failed: list[tuple[_Row, BaseException]] = field(default_factory=list)


class OutboxRelay:
    """Publishes the outbox to the bus, in order per subject, at least once.

    `start()` runs it in the background until `stop()`; `notify()` wakes it after a commit.
    `run_once()` does a single pass (tests, tools).
    """

    def __init__(
        self,
        database: Database,
        bus: MessageBus,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        publish_timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        retention: float | None = 3600.0,
        prune_interval: float = 60.0,
        prune_batch: int = 1000,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._database = database
        self._bus = bus
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._publish_timeout = publish_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._retention = retention
        self._prune_interval = prune_interval
        self._prune_batch = prune_batch
        self._clock = clock
        self._sleep = sleep
        self._wakeup = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._blocked: dict[str, float] = {}  # subject → monotonic time it may be retried
        self._failing = 0  # consecutive passes that got nothing through
        self._next_gauges = 0.0
        self._next_prune = 0.0
        self._lock_file: IO[str] | None = None
        self._standby_logged = False

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._lock_file is not None:
            self._lock_file.close()  # releases the SQLite relay election
            self._lock_file = None

    def notify(self) -> None:
        """Publish soon: call after committing a unit of work that recorded events."""
        self._wakeup.set()

    async def run_once(self) -> int:
        """One pass over a batch of unsent rows; returns how many were published."""
        return len((await self._pass()).sent)

    async def backlog(self) -> tuple[int, float]:
        """(unsent rows, age in seconds of the oldest of them), for readiness and audits."""
        outbox = _outbox()
        unsent = outbox.c.sent_at.is_(None)
        async with self._database.sessions() as session:
            count = await session.scalar(select(func.count()).select_from(outbox).where(unsent))
            # Oldest by seq, not min(created_at): the partial index answers it at once.
            oldest = await session.scalar(
                select(outbox.c.created_at).where(unsent).order_by(outbox.c.seq).limit(1)
            )
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        return int(count or 0), max(age, 0.0)

    async def prune(self) -> int:
        """Delete sent rows older than the retention, in small transactions; returns how many."""
        if self._retention is None:
            return 0
        outbox = _outbox()
        cutoff = datetime.now(UTC) - timedelta(seconds=self._retention)
        doomed = (
            select(outbox.c.seq)
            .where(outbox.c.created_at < cutoff, outbox.c.sent_at.is_not(None))
            .order_by(outbox.c.created_at)
            .limit(self._prune_batch)
            .with_for_update(skip_locked=True)  # replicas pruning at once never wait on each other
        )
        total = 0
        while True:
            async with self._database.write_sessions() as session:
                result = await session.execute(
                    delete(outbox).where(outbox.c.seq.in_(doomed.scalar_subquery()))
                )
                await session.commit()
            deleted = cast(CursorResult[Any], result).rowcount
            total += deleted
            if deleted < self._prune_batch:
                return total

    # The loop.

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()  # notifications from here on cause another pass
            try:
                done = await self._pass()
                await self._housekeeping()
            except Exception as error:
                if self._failing == 0:  # the traceback once, then one line per retry
                    _log.exception("outbox relay pass failed")
                else:
                    _log.warning("outbox relay pass failed again", error=_describe(error))
                done = None
            if done is None or (done.failed and not done.sent):
                # Nothing got through: the database or the broker is down. A notify still
                # ends the pause: fresh events are tried at once, failing subjects wait theirs.
                self._failing += 1
                await self._pause(self._backoff(self._failing))
                continue
            self._failing = 0
            if not (done.sent and done.claimed == self._batch_size):
                await self._pause(self._idle_timeout())

    def _idle_timeout(self) -> float:
        timeout = self._poll_interval
        if self._blocked:  # wake when the first subject's backoff ends
            timeout = min(timeout, min(self._blocked.values()) - self._clock.monotonic())
        return max(timeout, 0.0)

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less if notified."""
        notified = asyncio.ensure_future(self._wakeup.wait())
        slept = asyncio.ensure_future(self._sleep(seconds))
        try:
            await asyncio.wait({notified, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            notified.cancel()
            slept.cancel()

    def _backoff(self, attempt: int) -> float:
        return float(min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1)))

    async def _housekeeping(self) -> None:
        now = self._clock.monotonic()
        if now >= self._next_gauges:
            self._next_gauges = now + _GAUGE_INTERVAL
            count, age = await self.backlog()
            OUTBOX_BACKLOG.set(count)
            OUTBOX_OLDEST_UNSENT_AGE.set(age)
        if self._retention is not None and now >= self._next_prune and self._elected():
            self._next_prune = now + self._prune_interval
            if pruned := await self.prune():
                _log.info("outbox pruned", rows=pruned)

    # One pass: claim a batch, publish it in waves, mark what the broker acknowledged.

    async def _pass(self) -> _Pass:
        async with self._pass_lock:
            if not self._elected():
                return _Pass()
            now = self._clock.monotonic()
            self._blocked = {s: t for s, t in self._blocked.items() if t > now}
            if self._database.is_sqlite:
                done = await self._sqlite_pass()
            else:
                done = await self._postgres_pass()
            self._after(done)
            return done

    async def _sqlite_pass(self) -> _Pass:
        # The only relay of this database: read, publish, then write in a short transaction,
        # so the service's writers never wait on the broker.
        async with self._database.sessions() as session:
            rows = await self._claim(session)
        done = await self._publish(rows)
        async with self._database.write_sessions() as session:
            await self._settle(session, done)
            await session.commit()
        return done

    async def _postgres_pass(self) -> _Pass:
        # Subject locks are held by this transaction while publishing; commit releases them.
        async with self._database.write_sessions() as session:
            # Each statement must see the latest commits (the rows read after taking a lock).
            await session.connection(execution_options={"isolation_level": "READ COMMITTED"})
            rows = await self._claim(session)
            done = await self._publish(rows)
            await self._settle(session, done)
            await session.commit()
        return done

    async def _claim(self, session: AsyncSession) -> list[_Row]:
        outbox = _outbox()
        oldest = (
            select(outbox.c.seq, outbox.c.subject, outbox.c.attempts, outbox.c.envelope)
            .where(outbox.c.sent_at.is_(None))
            .order_by(outbox.c.seq)
            .limit(self._batch_size)
        )
        if self._blocked:
            waiting = list(self._blocked)[:_MAX_EXCLUDED]
            oldest = oldest.where(outbox.c.subject.not_in(waiting))
        if not self._database.is_sqlite:
            locked = await self._lock_subjects(session, oldest)
            if not locked:
                return []
            oldest = oldest.where(outbox.c.subject.in_(locked))
        # Limited in seq order, so each subject's rows are a prefix of its unsent rows.
        result = await session.execute(oldest)
        rows = [_Row(r.seq, r.subject, r.attempts, r.envelope) for r in result]
        return [row for row in rows if row.subject not in self._blocked]

    async def _lock_subjects(self, session: AsyncSession, oldest: Select[Any]) -> list[str]:
        """Lock (or skip, if another relay has them) the subjects of the oldest unsent rows."""
        heads = oldest.subquery()
        subjects = list(await session.scalars(select(heads.c.subject).distinct()))
        if not subjects:
            return []
        keys = {subject: _lock_key(subject) for subject in subjects}
        granted = set(
            await session.scalars(
                text(
                    "SELECT key FROM unnest(CAST(:keys AS bigint[])) AS key"
                    " WHERE pg_try_advisory_xact_lock(key)"
                ),
                {"keys": sorted(set(keys.values()))},
            )
        )
        return [subject for subject, key in keys.items() if key in granted]

    async def _publish(self, rows: Sequence[_Row]) -> _Pass:
        done = _Pass(claimed=len(rows))
        pending: dict[str, deque[_Row]] = {}
        for row in rows:
            pending.setdefault(row.subject, deque()).append(row)
        while pending:
            wave = [queue.popleft() for queue in pending.values()]
            pending = {subject: queue for subject, queue in pending.items() if queue}
            # The whole wave in one call: the bus keeps its maximum in flight all the
            # time, where chunks would drain to zero between them (a wave holds one row per
            # subject, so nothing in it can overtake anything).
            for row, error in zip(wave, await self._publish_chunk(wave), strict=True):
                if error is None:
                    done.sent.append(row.seq)
                else:
                    done.failed.append((row, error))
                    pending.pop(row.subject, None)  # its later rows must not overtake it
        return done

    async def _publish_chunk(self, chunk: Sequence[_Row]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * len(chunk)
        envelopes: list[tuple[int, Envelope]] = []
        for index, row in enumerate(chunk):
            try:
                envelopes.append((index, Envelope.from_bytes(row.envelope.encode())))
            except Exception as error:  # a row that cannot be parsed fails alone
                outcomes[index] = error
        if not envelopes:
            return outcomes
        try:
            async with asyncio.timeout(self._publish_timeout):
                acks = await self._bus.publish_many([envelope for _, envelope in envelopes])
            if len(acks) != len(envelopes):
                raise RuntimeError(f"bus returned {len(acks)} outcomes for {len(envelopes)}")
        except Exception as error:  # unknown outcome: treat as failed, it is published again
            acks = [error] * len(envelopes)
        for (index, _), ack in zip(envelopes, acks, strict=True):
            outcomes[index] = ack
        return outcomes

    async def _settle(self, session: AsyncSession, done: _Pass) -> None:
        outbox = _outbox()
        if done.sent:
            # As runs of consecutive seqs (a batch is mostly one run): a short statement,
            # where thousands of IN parameters cost more to build than the update itself.
            # Several relays on PostgreSQL interleave their rows: then a plain IN list.
            runs = _runs(done.sent)
            rows = (
                or_(*(outbox.c.seq.between(low, high) for low, high in runs))
                if len(runs) <= _MAX_RUNS
                else outbox.c.seq.in_(done.sent)
            )
            await session.execute(
                update(outbox)
                .where(rows)
                .values(sent_at=datetime.now(UTC), attempts=outbox.c.attempts + 1)
            )
        if done.failed:
            await session.execute(
                update(outbox)
                .where(outbox.c.seq == bindparam("row_seq"))
                .values(attempts=outbox.c.attempts + 1, last_error=bindparam("error")),
                [{"row_seq": row.seq, "error": _describe(error)} for row, error in done.failed],
            )

    def _after(self, done: _Pass) -> None:
        """Count, and hold back the subjects that failed (after the marks are committed)."""
        OUTBOX_PUBLISHED.inc(len(done.sent))
        if not done.failed:
            return
        OUTBOX_PUBLISH_FAILURES.inc(len(done.failed))
        now = self._clock.monotonic()
        for row, _ in done.failed:
            self._blocked[row.subject] = now + self._backoff(row.attempts + 1)
        row, error = done.failed[0]
        _log.warning(
            "outbox publish failed",
            failed=len(done.failed),
            sent=len(done.sent),
            first_subject=row.subject,
            first_error=_describe(error),
        )

    def _elected(self) -> bool:
        """On a SQLite file, whether this relay holds the lock that makes it the publisher."""
        database = self._database.url.database
        if not self._database.is_sqlite or database in (None, "", ":memory:"):
            return True
        if self._lock_file is not None:
            return True
        assert database is not None
        handle = Path(database).with_suffix(".relay.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            if not self._standby_logged:
                _log.info("outbox relay standing by: another relay publishes this database")
                self._standby_logged = True
            return False
        self._lock_file = handle
        return True


def _lock_key(subject: str) -> int:
    """A stable 64-bit advisory lock key per subject (a collision only makes two share a lock)."""
    digest = hashlib.blake2b(subject.encode(), digest_size=8, person=b"mercato-outbox").digest()
    return int.from_bytes(digest, "big", signed=True)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:LAST_ERROR_LENGTH]
