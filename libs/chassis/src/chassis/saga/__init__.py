"""Orchestrated sagas that survive crashes: steps, compensations, timeouts, in one database.

A service describes a saga as steps (`Step`: compensatable ones, one pivot, retriable ones;
each a `Command` for another service or a local function) and runs it with a
`SqlSagaOrchestrator` over its own database and outbox:

    orchestrator = SqlSagaOrchestrator(database, [checkout], source="orders",
                                       notify=messaging.notify)
    messaging.consume(orchestrator.reply_types, apply)   # apply calls handle_reply
    async with uow:                                      # the order and its saga, together
        ...; await orchestrator.start_saga(session, "checkout", correlation_id=order.id,
                                           data={...})
        await uow.commit()
    await orchestrator.start()                           # resume + the timeout loop

The table comes from `add_saga_tables(metadata)` / `create_saga_tables(op)`. Errors are in
`chassis.saga.errors`.
"""

from chassis.saga._definition import (
    Command,
    Compensation,
    Failure,
    Guard,
    Hook,
    LocalAction,
    SagaDefinition,
    Step,
    StepKind,
)
from chassis.saga._metrics import SAGA_DURATION, SAGA_STEPS, SAGAS_FINISHED, SAGAS_STARTED
from chassis.saga._orchestrator import SagaOrchestrator, SqlSagaOrchestrator
from chassis.saga._state import HistoryEntry, SagaFailure, SagaInstance, SagaStatus
from chassis.saga._tables import SAGA_TABLE, add_saga_tables, create_saga_tables, drop_saga_tables
from chassis.saga.errors import (
    SagaAlreadyExistsError,
    SagaDefinitionError,
    SagaError,
    StaleSagaError,
    UnknownSagaError,
)

__all__ = [
    "SAGAS_FINISHED",
    "SAGAS_STARTED",
    "SAGA_DURATION",
    "SAGA_STEPS",
    "SAGA_TABLE",
    "Command",
    "Compensation",
    "Failure",
    "Guard",
    "HistoryEntry",
    "Hook",
    "LocalAction",
    "SagaAlreadyExistsError",
    "SagaDefinition",
    "SagaDefinitionError",
    "SagaError",
    "SagaFailure",
    "SagaInstance",
    "SagaOrchestrator",
    "SagaStatus",
    "SqlSagaOrchestrator",
    "StaleSagaError",
    "Step",
    "StepKind",
    "UnknownSagaError",
    "add_saga_tables",
    "create_saga_tables",
    "drop_saga_tables",
]
