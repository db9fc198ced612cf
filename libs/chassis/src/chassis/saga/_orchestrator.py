"""The orchestrator: drives saga instances stored in the service's own database.

Every transition happens in one database transaction together with what caused it and what
it sends: `start_saga` runs in the caller's transaction (the order and its saga commit
together), `handle_reply` in the inbox's transaction of the reply (the inbox claim, the new
saga state, the next command in the outbox and any local step's writes commit together), and
the timeout loop opens one transaction per saga. Commands are recorded in the outbox
(`record_events`), never published directly. Saves compare and bump `version`, so two
transactions that advance one saga at once cannot both win: the loser raises
`StaleSagaError`, rolls back, and its reply is redelivered (or its timeout retried).

Replies are matched to a saga by (saga type, correlation id); a reply the saga does not wait
for at its current step (late, duplicate under another id, for a finished saga) changes
nothing but the history. Timeouts: a compensatable (or pivot) step that times out counts as
failed and is compensated itself too, as its outcome is unknown (participants answer a
compensation for something they never did with success); a retriable step or a compensation
that times out is re-issued with a fresh envelope and a doubled wait.

On `start()`, unfinished sagas whose current command was sent more than `resume_grace`
seconds ago get it re-issued at once (a crash may have lost an in-flight exchange; every
participant is idempotent by business key), without moving a compensatable step's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import orjson
import structlog
from opentelemetry import context as otel_context
from opentelemetry.trace import Status, StatusCode
from sqlalchemy import CursorResult, and_, event, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from chassis._database import Database
from chassis.discovery import UtcClock, utc_now
from chassis.messaging import Envelope, record_events
from chassis.resilience import Sleep
from chassis.saga._definition import Command, Compensation, SagaDefinition, Step, StepKind
from chassis.saga._metrics import (
    SAGA_DURATION,
    SAGA_OLDEST_ACTIVE_AGE,
    SAGA_STEPS,
    SAGAS_ACTIVE,
    SAGAS_FINISHED,
    SAGAS_STARTED,
)
from chassis.saga._state import (
    UNFINISHED,
    HistoryEntry,
    SagaFailure,
    SagaInstance,
    SagaStatus,
)
from chassis.saga._tables import saga_table
from chassis.saga.errors import (
    SagaAlreadyExistsError,
    SagaDefinitionError,
    StaleSagaError,
    UnknownSagaError,
)
from chassis.tracing import tracer

__all__ = ["SagaOrchestrator", "SqlSagaOrchestrator"]

log = structlog.get_logger("chassis.saga")

_MAX_HISTORY = 500  # a retriable step retried for days must not grow a row without bound
_KEEP_FIRST = 50
_STEP_OUTCOMES = frozenset(
    {"succeeded", "failed", "timed_out", "reissued", "compensated", "ignored"}
)
# A declined card fails a step as designed; a step nobody answered is what operators chase.
_ERROR_OUTCOMES = frozenset({"timed_out"})
_EFFECTS_KEY = "chassis.saga.after_commit"


class SagaOrchestrator(Protocol):
    """Starts sagas and advances them on replies and timeouts.

    The database-backed `SqlSagaOrchestrator` implements it; a workflow engine (Temporal)
    could too: `start_saga` would record the start in the caller's transaction and
    `handle_reply` would signal the workflow.
    """

    @property
    def reply_types(self) -> tuple[str, ...]:
        """Every message type some saga waits for: what the service must consume."""
        ...

    def definition(self, saga_type: str) -> SagaDefinition: ...

    async def start_saga(
        self,
        session: AsyncSession,
        saga_type: str,
        *,
        correlation_id: str,
        data: Mapping[str, Any],
        saga_id: str | None = None,
        cause: Envelope | None = None,
    ) -> SagaInstance:
        """Create a saga in the caller's transaction and send its first command there."""
        ...

    async def handle_reply(self, session: AsyncSession, envelope: Envelope) -> bool:
        """Advance the saga `envelope` answers, in the caller's (inbox) transaction.

        True if it moved a saga on; False if no saga waited for it (ignored, and recorded in
        that saga's history when there is one)."""
        ...

    async def get(self, saga_id: str) -> SagaInstance | None: ...

    async def find(
        self,
        *,
        status: SagaStatus | None = None,
        saga_type: str | None = None,
        correlation_id: str | None = None,
        limit: int | None = 100,
        before: tuple[datetime, str] | None = None,
    ) -> list[SagaInstance]:
        """Sagas, newest first; `before` is the (created_at, id) of the last one seen."""
        ...

    async def start(self) -> None:
        """Resume unfinished sagas and watch their deadlines in the background."""
        ...

    async def stop(self) -> None: ...


@dataclass
class _Work:
    """A saga being changed within one transaction, and what to do once that commits."""

    definition: SagaDefinition
    now: datetime
    id: str
    correlation_id: str
    status: SagaStatus
    step: str | None
    attempts: int
    data: dict[str, Any]
    history: list[HistoryEntry]
    failure: SagaFailure | None
    deadline: datetime | None
    step_started_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    version: int  # as stored; 0 for a saga not yet inserted
    commands: list[Envelope] = field(default_factory=list)
    effects: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def of(cls, definition: SagaDefinition, instance: SagaInstance, now: datetime) -> _Work:
        return cls(
            definition=definition,
            now=now,
            id=instance.id,
            correlation_id=instance.correlation_id,
            status=instance.status,
            step=instance.step,
            attempts=instance.attempts,
            data=dict(instance.data),
            history=list(instance.history),
            failure=instance.failure,
            deadline=instance.deadline,
            step_started_at=instance.step_started_at,
            created_at=instance.created_at,
            finished_at=instance.finished_at,
            version=instance.version,
        )

    def snapshot(self) -> SagaInstance:
        return SagaInstance(
            id=self.id,
            saga_type=self.definition.name,
            correlation_id=self.correlation_id,
            status=self.status,
            step=self.step,
            attempts=self.attempts,
            data=dict(self.data),
            history=tuple(self.history),
            failure=self.failure,
            deadline=self.deadline,
            step_started_at=self.step_started_at,
            created_at=self.created_at,
            updated_at=self.now,
            finished_at=self.finished_at,
            version=self.version,
        )

    def note(
        self,
        step: str | None,
        what: str,
        *,
        message: Envelope | None = None,
        reason: str | None = None,
    ) -> None:
        entry = HistoryEntry(
            step=step,
            event=what,
            at=self.now,
            message_type=message.type if message else None,
            message_id=message.id if message else None,
            reason=reason,
        )
        self.history.append(entry)
        if len(self.history) > _MAX_HISTORY:
            del self.history[_KEEP_FIRST : len(self.history) - (_MAX_HISTORY - _KEEP_FIRST)]
        saga, saga_id = self.definition.name, self.id
        noted_ns, parent = time.time_ns(), otel_context.get_current()

        def report() -> None:
            # A span per transition, from when it was decided to its commit, in the trace of
            # the request or message that caused it: the saga's steps, in order, in one trace.
            attributes = {"saga.id": saga_id, "saga.type": saga, "saga.outcome": what}
            if step:
                attributes["saga.step"] = step
            if reason:
                attributes["saga.reason"] = reason
            if entry.message_type:
                attributes["messaging.destination.name"] = entry.message_type
            span = tracer().start_span(
                f"saga {saga}: {step or saga} {what}",
                context=parent,
                start_time=noted_ns,
                attributes=attributes,
            )
            if what in _ERROR_OUTCOMES:
                span.set_status(Status(StatusCode.ERROR, reason or what))
            span.end()
            if what in _STEP_OUTCOMES:
                SAGA_STEPS.labels(saga, step or "-", what).inc()
            log.info(
                "saga transition",
                saga=saga,
                saga_id=saga_id,
                step=step,
                outcome=what,
                message_type=entry.message_type,
                reason=reason,
            )

        self.effects.append(report)


def _after_commit(session: AsyncSession, effects: Sequence[Callable[[], None]]) -> None:
    """Run `effects` once the session's outermost transaction commits; drop them on rollback.

    Metrics and logs then tell what happened, not what was tried and rolled back."""
    if not effects:
        return
    sync = session.sync_session
    pending: list[Callable[[], None]] | None = sync.info.get(_EFFECTS_KEY)
    if pending is None:
        pending = []
        sync.info[_EFFECTS_KEY] = pending
        queue = pending

        def run(target: Session) -> None:
            if target.in_nested_transaction():
                return  # a savepoint: the real commit is still to come
            todo = list(queue)
            queue.clear()
            for effect in todo:
                try:
                    effect()
                except Exception:  # a metric or a log line must never fail a commit
                    log.exception("saga after-commit effect failed")

        def drop(target: Session) -> None:
            if not target.in_nested_transaction():
                queue.clear()

        event.listen(sync, "after_commit", run)
        event.listen(sync, "after_rollback", drop)
    pending.extend(effects)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _instance(row: RowMapping) -> SagaInstance:
    failure = orjson.loads(row["failure"]) if row["failure"] else None
    return SagaInstance(
        id=row["id"],
        saga_type=row["saga_type"],
        correlation_id=row["correlation_id"],
        status=SagaStatus(row["status"]),
        step=row["step"],
        attempts=row["attempts"],
        data=orjson.loads(row["data"]),
        history=tuple(HistoryEntry.from_dict(item) for item in orjson.loads(row["history"])),
        failure=SagaFailure.from_dict(failure) if failure else None,
        deadline=row["deadline"],
        step_started_at=row["step_started_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        version=row["version"],
    )


def _reason(envelope: Envelope) -> str:
    reason = envelope.data.get("reason")
    return str(reason)[:200] if reason else "failed"


class SqlSagaOrchestrator:
    """A `SagaOrchestrator` whose sagas live in the service's database (table
    `saga_instances`, see `add_saga_tables`) and whose commands leave through its outbox.

    `source` names the service in the commands' envelopes; `notify` (the outbox relay's) is
    called after each commit that recorded commands. `clock` and `sleep` are injectable, and
    `check_timeouts()` / `resume()` run single passes, so tests need no real waiting. The
    timeout loop also counts the unfinished sagas every `metrics_interval` seconds
    (`sample_metrics()`), so a scrape never queries the database.
    """

    def __init__(
        self,
        database: Database,
        definitions: Sequence[SagaDefinition],
        *,
        source: str,
        notify: Callable[[], None] | None = None,
        clock: UtcClock = utc_now,
        sleep: Sleep = asyncio.sleep,
        poll_interval: float = 1.0,
        batch_size: int = 100,
        resume_grace: float = 5.0,
        error_backoff: float = 10.0,
        metrics_interval: float = 5.0,
    ) -> None:
        if poll_interval <= 0 or batch_size < 1 or resume_grace < 0:
            raise ValueError("poll_interval > 0, batch_size >= 1 and resume_grace >= 0")
        self._database = database
        self._definitions: dict[str, SagaDefinition] = {}
        for definition in definitions:
            if definition.name in self._definitions:
                raise SagaDefinitionError(f"saga {definition.name!r} is defined twice")
            self._definitions[definition.name] = definition
        self._by_reply: dict[str, list[SagaDefinition]] = {}
        for definition in self._definitions.values():
            for reply in definition.reply_types:
                self._by_reply.setdefault(reply, []).append(definition)
        self._source = source
        self._notify = notify
        self._clock = clock
        self._sleep = sleep
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._resume_grace = timedelta(seconds=resume_grace)
        self._error_backoff = timedelta(seconds=error_backoff)
        self._metrics_interval = timedelta(seconds=metrics_interval)
        self._next_metrics: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._table = saga_table()

    # -- the port --------------------------------------------------------------------------

    @property
    def reply_types(self) -> tuple[str, ...]:
        return tuple(self._by_reply)

    def definition(self, saga_type: str) -> SagaDefinition:
        try:
            return self._definitions[saga_type]
        except KeyError:
            raise UnknownSagaError(f"no saga definition named {saga_type!r}") from None

    async def start_saga(
        self,
        session: AsyncSession,
        saga_type: str,
        *,
        correlation_id: str,
        data: Mapping[str, Any],
        saga_id: str | None = None,
        cause: Envelope | None = None,
    ) -> SagaInstance:
        definition = self.definition(saga_type)
        table = self._table
        existing = await session.scalar(
            select(table.c.id).where(
                table.c.saga_type == saga_type, table.c.correlation_id == correlation_id
            )
        )
        if existing is not None:
            raise SagaAlreadyExistsError(
                f"a {saga_type} saga exists already for {correlation_id!r} ({existing})"
            )
        now = self._clock()
        work = _Work(
            definition=definition,
            now=now,
            id=saga_id or str(uuid.uuid4()),
            correlation_id=correlation_id,
            status=SagaStatus.RUNNING,
            step=None,
            attempts=0,
            data=orjson.loads(orjson.dumps(dict(data))),  # JSON only, and a private copy
            history=[],
            failure=None,
            deadline=None,
            step_started_at=None,
            created_at=now,
            finished_at=None,
            version=0,
        )
        work.note(None, "started")
        work.effects.append(lambda: SAGAS_STARTED.labels(saga_type).inc())
        await self._forward(session, work, 0, cause)
        try:
            await self._save(session, work)
        except IntegrityError:
            raise SagaAlreadyExistsError(
                f"a {saga_type} saga exists already for {correlation_id!r}"
            ) from None
        return work.snapshot()

    async def handle_reply(self, session: AsyncSession, envelope: Envelope) -> bool:
        handled = False
        for definition in self._by_reply.get(envelope.type, ()):
            correlation_id = definition.correlate(envelope)
            instance = await self._load(
                session, saga_type=definition.name, correlation_id=correlation_id
            )
            if instance is None:
                log.info(
                    "reply for no saga",
                    saga=definition.name,
                    correlation_id=correlation_id,
                    message_type=envelope.type,
                )
                continue
            work = _Work.of(definition, instance, self._clock())
            handled = await self._on_reply(session, work, envelope) or handled
            await self._save(session, work)
        return handled

    async def get(self, saga_id: str) -> SagaInstance | None:
        async with self._database.sessions() as session:
            return await self._load(session, saga_id=saga_id)

    async def find(
        self,
        *,
        status: SagaStatus | None = None,
        saga_type: str | None = None,
        correlation_id: str | None = None,
        limit: int | None = 100,
        before: tuple[datetime, str] | None = None,
    ) -> list[SagaInstance]:
        table = self._table
        statement = select(table)
        if status is not None:
            statement = statement.where(table.c.status == str(status))
        if saga_type is not None:
            statement = statement.where(table.c.saga_type == saga_type)
        if correlation_id is not None:
            statement = statement.where(table.c.correlation_id == correlation_id)
        if before is not None:
            created, last_id = before
            statement = statement.where(
                or_(
                    table.c.created_at < created,
                    and_(table.c.created_at == created, table.c.id < last_id),
                )
            )
        statement = statement.order_by(table.c.created_at.desc(), table.c.id.desc())
        if limit is not None:
            statement = statement.limit(limit)
        async with self._database.sessions() as session:
            result = await session.execute(statement)
            return [_instance(row) for row in result.mappings()]

    # -- background ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="saga-orchestrator")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        try:
            await self.resume()
        except Exception:
            log.exception("saga resume failed; the timeout loop carries on")
        failing = False
        while True:
            try:
                done = await self.check_timeouts()
                now = self._clock()
                if self._next_metrics is None or now >= self._next_metrics:
                    self._next_metrics = now + self._metrics_interval
                    await self.sample_metrics()
                failing = False
            except Exception:
                if not failing:  # the traceback once, not every poll
                    log.exception("saga timeout pass failed")
                failing = True
                done = 0
            if done < self._batch_size:
                await self._sleep(self._poll_interval)

    async def resume(self) -> int:
        """Re-issue the current command of every unfinished saga that sent it more than
        `resume_grace` ago and is not yet due (due ones are `check_timeouts`'s)."""
        now = self._clock()
        table = self._table
        statement = (
            select(table.c.id)
            .where(
                table.c.status.in_([str(s) for s in UNFINISHED]),
                table.c.step_started_at <= now - self._resume_grace,
                table.c.deadline > now,
            )
            .order_by(table.c.deadline)
        )
        async with self._database.sessions() as session:
            ids = list(await session.scalars(statement))
        resumed = 0
        for saga_id in ids:
            if await self._in_transaction(saga_id, self._resume_one):
                resumed += 1
        if resumed:
            log.info("sagas resumed", count=resumed)
        return resumed

    async def check_timeouts(self) -> int:
        """One pass over sagas whose deadline has passed (a batch); returns how many moved."""
        now = self._clock()
        table = self._table
        statement = (
            select(table.c.id)
            .where(table.c.deadline <= now, table.c.status.in_([str(s) for s in UNFINISHED]))
            .order_by(table.c.deadline)
            .limit(self._batch_size)
        )
        async with self._database.sessions() as session:
            ids = list(await session.scalars(statement))
        moved = 0
        for saga_id in ids:
            if await self._in_transaction(saga_id, self._time_out_one):
                moved += 1
        return moved

    async def sample_metrics(self) -> None:
        """Count the unfinished sagas by type and status, and their oldest's age, into the
        gauges (one grouped query over the unfinished rows)."""
        table = self._table
        statement = (
            select(table.c.saga_type, table.c.status, func.count(), func.min(table.c.created_at))
            .where(table.c.status.in_([str(s) for s in UNFINISHED]))
            .group_by(table.c.saga_type, table.c.status)
        )
        async with self._database.sessions() as session:
            rows = (await session.execute(statement)).all()
        now = self._clock()
        counts = {(name, str(s)): 0 for name in self._definitions for s in UNFINISHED}
        oldest: dict[str, datetime] = {}
        for saga_type, status, count, created in rows:
            counts[(saga_type, status)] = count
            if created is not None and (saga_type not in oldest or created < oldest[saga_type]):
                oldest[saga_type] = created
        for (saga_type, status), count in counts.items():
            SAGAS_ACTIVE.labels(saga_type, status).set(count)
        for saga_type in {name for name, _ in counts}:
            started = oldest.get(saga_type)
            age = (now - started).total_seconds() if started is not None else 0.0
            SAGA_OLDEST_ACTIVE_AGE.labels(saga_type).set(max(age, 0.0))

    async def _in_transaction(
        self, saga_id: str, change: Callable[[AsyncSession, _Work], Awaitable[bool]]
    ) -> bool:
        try:
            async with self._database.write_sessions() as session:
                instance = await self._load(session, saga_id=saga_id)
                if instance is None or instance.status.finished:
                    return False
                work = _Work.of(self.definition(instance.saga_type), instance, self._clock())
                if not await change(session, work):
                    return False
                await self._save(session, work)
                await session.commit()
            if self._notify is not None:  # a local step may have recorded events too
                self._notify()
        except StaleSagaError:
            return False  # a reply moved it first; its new state decides what comes next
        except Exception:
            log.exception("saga step could not be advanced; retried later", saga_id=saga_id)
            await self._postpone(saga_id)
            return False
        return True

    async def _postpone(self, saga_id: str) -> None:
        with contextlib.suppress(Exception):
            async with self._database.write_sessions() as session:
                await session.execute(
                    update(self._table)
                    .where(self._table.c.id == saga_id)
                    .values(deadline=self._clock() + self._error_backoff)
                )
                await session.commit()

    async def _time_out_one(self, session: AsyncSession, work: _Work) -> bool:
        if work.deadline is None or work.deadline > work.now or work.step is None:
            return False
        await self._on_timeout(session, work)
        return True

    async def _resume_one(self, session: AsyncSession, work: _Work) -> bool:
        if work.step is None or work.deadline is None or work.deadline <= work.now:
            return False
        if work.step_started_at and work.step_started_at > work.now - self._resume_grace:
            return False
        definition = work.definition
        step = definition.steps[definition.index(work.step)]
        if work.status is SagaStatus.RUNNING and isinstance(step.action, Command):
            keep = step.kind is not StepKind.RETRIABLE  # its timeout still counts from the start
            self._send_action(
                work,
                step,
                work.attempts or 1,
                None,
                "reissued",
                reason="resumed",
                keep_deadline=keep,
            )
        elif work.status is SagaStatus.COMPENSATING and isinstance(step.compensation, Compensation):
            self._send_compensation(work, step, work.attempts or 1, None, "reissued", "resumed")
        else:
            work.deadline = work.now  # a local step waiting to be retried: due now
        return True

    # -- transitions -----------------------------------------------------------------------

    def _command(
        self, work: _Work, type_: str, data: dict[str, Any], cause: Envelope | None
    ) -> Envelope:
        envelope = Envelope(
            type=type_,
            source=self._source,
            subject=work.correlation_id,
            data=data,
            correlation_id=(cause.correlation_id if cause else None) or work.id,
            causation_id=cause.id if cause else None,
            traceparent=cause.traceparent if cause else None,
        )
        work.commands.append(envelope)
        return envelope

    def _wait(self, work: _Work, step: Step, status: SagaStatus, attempt: int) -> None:
        work.status = status
        work.step = step.name
        work.attempts = attempt
        work.deadline = work.now + timedelta(seconds=step.wait(attempt))
        work.step_started_at = work.now

    def _send_action(
        self,
        work: _Work,
        step: Step,
        attempt: int,
        cause: Envelope | None,
        what: str,
        *,
        reason: str | None = None,
        keep_deadline: bool = False,
    ) -> None:
        assert isinstance(step.action, Command)
        deadline = work.deadline
        self._wait(work, step, SagaStatus.RUNNING, attempt)
        if keep_deadline:
            work.deadline = deadline
        envelope = self._command(work, step.action.type, step.action.build(work.data), cause)
        work.note(step.name, what, message=envelope, reason=reason)

    def _send_compensation(
        self,
        work: _Work,
        step: Step,
        attempt: int,
        cause: Envelope | None,
        what: str,
        reason: str | None = None,
    ) -> None:
        assert isinstance(step.compensation, Compensation)
        self._wait(work, step, SagaStatus.COMPENSATING, attempt)
        compensation = step.compensation
        envelope = self._command(work, compensation.type, compensation.build(work.data), cause)
        work.note(step.name, what, message=envelope, reason=reason)

    async def _forward(
        self,
        session: AsyncSession,
        work: _Work,
        index: int,
        cause: Envelope | None,
        attempt: int = 1,
    ) -> None:
        """Run steps from `index` on, until one waits for a reply or the saga ends."""
        definition = work.definition
        while index < len(definition.steps):
            step = definition.steps[index]
            work.status, work.step, work.attempts = SagaStatus.RUNNING, step.name, attempt
            if definition.before_step is not None and step.kind is not StepKind.RETRIABLE:
                refusal = await definition.before_step(session, work.snapshot())
                if refusal is not None:
                    work.note(step.name, "failed", reason=refusal.reason)
                    failure = SagaFailure(step.name, refusal.reason)
                    await self._fail(session, work, failure, index - 1, cause)
                    return
            if isinstance(step.action, Command):
                self._send_action(work, step, attempt, cause, "command_sent")
                return
            outcome = await step.action(session, work.snapshot())
            if outcome is None:
                work.note(step.name, "succeeded")
                index, attempt = index + 1, 1
                continue
            work.note(step.name, "failed", reason=outcome.reason)
            if step.kind is StepKind.RETRIABLE:
                self._wait(work, step, SagaStatus.RUNNING, attempt)  # the timeout loop retries
                return
            failure = SagaFailure(step.name, outcome.reason)
            await self._fail(session, work, failure, index - 1, cause)
            return
        await self._finish(session, work, SagaStatus.COMPLETED)

    async def _fail(
        self,
        session: AsyncSession,
        work: _Work,
        failure: SagaFailure,
        last: int,
        cause: Envelope | None,
    ) -> None:
        """Compensate steps `last`, `last - 1`, … 0 (those that have a compensation)."""
        work.failure = failure
        work.status = SagaStatus.COMPENSATING
        work.note(None, "compensating", reason=failure.reason)
        await self._compensate(session, work, last, cause)

    async def _compensate(
        self,
        session: AsyncSession,
        work: _Work,
        index: int,
        cause: Envelope | None,
        attempt: int = 1,
    ) -> None:
        definition = work.definition
        while index >= 0:
            step = definition.steps[index]
            compensation = step.compensation
            if compensation is None:
                index -= 1
                continue
            if isinstance(compensation, Compensation):
                self._send_compensation(work, step, attempt, cause, "compensation_sent")
                return
            work.status, work.step, work.attempts = SagaStatus.COMPENSATING, step.name, attempt
            outcome = await compensation(session, work.snapshot())
            if outcome is not None:
                work.note(step.name, "failed", reason=outcome.reason)
                self._wait(work, step, SagaStatus.COMPENSATING, attempt)
                return
            work.note(step.name, "compensated")
            index, attempt = index - 1, 1
        await self._finish(session, work, SagaStatus.COMPENSATED)

    async def _finish(self, session: AsyncSession, work: _Work, status: SagaStatus) -> None:
        work.status, work.step, work.attempts = status, None, 0
        work.deadline = work.step_started_at = None
        work.finished_at = work.now
        work.note(None, "completed" if status is SagaStatus.COMPLETED else "compensated")
        definition = work.definition
        hook = (
            definition.on_completed if status is SagaStatus.COMPLETED else definition.on_compensated
        )
        if hook is not None:
            await hook(session, work.snapshot())
        seconds = (work.now - work.created_at).total_seconds()
        outcome = str(status).lower()

        def count() -> None:
            SAGAS_FINISHED.labels(definition.name, outcome).inc()
            SAGA_DURATION.labels(definition.name).observe(max(seconds, 0.0))

        work.effects.append(count)

    async def _on_reply(self, session: AsyncSession, work: _Work, envelope: Envelope) -> bool:
        definition = work.definition
        if work.step is None or work.status.finished:
            work.note(None, "ignored", message=envelope, reason=f"saga is {work.status}")
            return False
        index = definition.index(work.step)
        step = definition.steps[index]
        action, compensation = step.action, step.compensation
        if work.status is SagaStatus.RUNNING and isinstance(action, Command):
            if envelope.type == action.success:
                work.note(step.name, "succeeded", message=envelope)
                for key in action.keep:
                    if key in envelope.data:
                        work.data[key] = envelope.data[key]
                for key in action.forget:
                    work.data.pop(key, None)
                await self._forward(session, work, index + 1, envelope)
                return True
            if envelope.type in action.failure:
                reason = _reason(envelope)
                work.note(step.name, "failed", message=envelope, reason=reason)
                if step.kind is StepKind.RETRIABLE:
                    # Re-issued by the timeout loop once this attempt's wait is over.
                    work.deadline = work.now + timedelta(seconds=step.wait(work.attempts))
                    return True
                failure = SagaFailure(step.name, reason, envelope.type)
                await self._fail(session, work, failure, index - 1, envelope)
                return True
        if (
            work.status is SagaStatus.COMPENSATING
            and isinstance(compensation, Compensation)
            and envelope.type == compensation.reply
        ):
            work.note(step.name, "compensated", message=envelope)
            await self._compensate(session, work, index - 1, envelope)
            return True
        work.note(
            work.step, "ignored", message=envelope, reason=f"waiting on {work.step} ({work.status})"
        )
        return False

    async def _on_timeout(self, session: AsyncSession, work: _Work) -> None:
        definition = work.definition
        assert work.step is not None
        index = definition.index(work.step)
        step = definition.steps[index]
        if work.status is SagaStatus.RUNNING:
            if not isinstance(step.action, Command):
                await self._forward(session, work, index, None, attempt=work.attempts + 1)
            elif step.kind is StepKind.RETRIABLE:
                self._send_action(work, step, work.attempts + 1, None, "reissued")
            else:
                work.note(step.name, "timed_out")
                # Its outcome is unknown, so it is compensated along with the earlier ones.
                await self._fail(session, work, SagaFailure(step.name, "timeout"), index, None)
        elif isinstance(step.compensation, Compensation):
            self._send_compensation(work, step, work.attempts + 1, None, "reissued")
        else:
            await self._compensate(session, work, index, None, attempt=work.attempts + 1)

    # -- storage ---------------------------------------------------------------------------

    async def _load(
        self,
        session: AsyncSession,
        *,
        saga_id: str | None = None,
        saga_type: str | None = None,
        correlation_id: str | None = None,
    ) -> SagaInstance | None:
        table = self._table
        if saga_id is not None:
            statement = select(table).where(table.c.id == saga_id)
        else:
            statement = select(table).where(
                table.c.saga_type == saga_type, table.c.correlation_id == correlation_id
            )
        row = (await session.execute(statement)).mappings().first()
        return _instance(row) if row else None

    async def _save(self, session: AsyncSession, work: _Work) -> None:
        table = self._table
        values = {
            "status": str(work.status),
            "step": work.step,
            "attempts": work.attempts,
            "data": _dumps(work.data),
            "history": _dumps([entry.to_dict() for entry in work.history]),
            "failure": _dumps(work.failure.to_dict()) if work.failure else None,
            "deadline": work.deadline,
            "step_started_at": work.step_started_at,
            "updated_at": work.now,
            "finished_at": work.finished_at,
            "version": work.version + 1,
        }
        if work.version == 0:
            await session.execute(
                insert(table).values(
                    id=work.id,
                    saga_type=work.definition.name,
                    correlation_id=work.correlation_id,
                    created_at=work.created_at,
                    **values,
                )
            )
        else:
            result = await session.execute(
                update(table)
                .where(table.c.id == work.id, table.c.version == work.version)
                .values(values)
            )
            if cast(CursorResult[Any], result).rowcount != 1:
                raise StaleSagaError(
                    f"saga {work.id} changed since version {work.version}; retry with its news"
                )
        await record_events(session, work.commands)
        effects = list(work.effects)
        if work.commands and self._notify is not None:
            effects.append(self._notify)
        _after_commit(session, effects)
        work.version += 1
        work.commands, work.effects = [], []
