"""Saga metrics, in Prometheus naming (default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "SAGAS_ACTIVE",
    "SAGAS_FINISHED",
    "SAGAS_STARTED",
    "SAGA_DURATION",
    "SAGA_OLDEST_ACTIVE_AGE",
    "SAGA_STEPS",
]

SAGAS_STARTED = Counter(
    "mercato_sagas_started_total",
    "Sagas started, by saga type",
    ["saga"],
)
SAGAS_FINISHED = Counter(
    "mercato_sagas_finished_total",
    "Sagas finished, by saga type and outcome (completed, compensated)",
    ["saga", "outcome"],
)
SAGA_DURATION = Histogram(
    "mercato_saga_duration_seconds",
    "Time from a saga's start to its end, by saga type",
    ["saga"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)
SAGAS_ACTIVE = Gauge(
    "mercato_sagas_active",
    "Unfinished sagas in the database, by saga type and status (RUNNING, COMPENSATING), "
    "as the orchestrator's timeout loop last counted them",
    ["saga", "status"],
)
SAGA_OLDEST_ACTIVE_AGE = Gauge(
    "mercato_saga_oldest_active_age_seconds",
    "Age of the oldest unfinished saga, by saga type (0 when none)",
    ["saga"],
)
SAGA_STEPS = Counter(
    "mercato_saga_steps_total",
    "Saga step events, by saga type, step and outcome "
    "(succeeded, failed, timed_out, reissued, compensated, ignored)",
    ["saga", "step", "outcome"],
)
