"""Saga errors.

SagaError
├── SagaDefinitionError      a definition breaks the rules (step order, kinds, names, types)
├── UnknownSagaError         no definition is registered for that saga type
├── SagaAlreadyExistsError   a saga of that type already exists for that correlation id
└── StaleSagaError           another transaction advanced the saga first (optimistic
                             concurrency); the change is rolled back and retried. It is also a
                             `chassis.messaging.TransientError`, so a bus redelivers the reply.
"""

from __future__ import annotations

from chassis.messaging.errors import TransientError

__all__ = [
    "SagaAlreadyExistsError",
    "SagaDefinitionError",
    "SagaError",
    "StaleSagaError",
    "UnknownSagaError",
]


class SagaError(Exception):
    pass


class SagaDefinitionError(SagaError, ValueError):
    pass


class UnknownSagaError(SagaError, LookupError):
    pass


class SagaAlreadyExistsError(SagaError):
    pass


class StaleSagaError(SagaError, TransientError):
    pass
