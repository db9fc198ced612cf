"""One instance's `/metrics`, read down to the numbers the console shows.

Every service serves the chassis' Prometheus metrics; this module parses the text format
(`prometheus_client.parser`) and keeps only what the console draws, summed over the label
sets it does not split by. Probes and scrapes (`/livez`, `/readyz`, `/metrics`) and the
console's own API are left out of the request counts, so watching the platform does not
show up as traffic on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["BREAKER_STATES", "Reading", "parse_metrics", "quantile"]

_QUIET_ROUTES = frozenset({"/livez", "/readyz", "/metrics"})
_CONSOLE_PREFIXES = ("/api/v1/console", "/console")
# mercato_circuit_breaker_state's values (chassis.resilience._metrics).
BREAKER_STATES = {0: "closed", 1: "open", 2: "half_open", 3: "forced_open"}


@dataclass(frozen=True)
class Reading:
    """The counters and gauges of one instance at one moment (counters are totals since
    the process started; rates come from the difference of two readings)."""

    requests: float = 0.0  # HTTP requests served, probes and console left out
    errors: float = 0.0  # of which answered 5xx
    # The request-duration histogram summed over routes: (upper bound, cumulative count).
    buckets: tuple[tuple[float, float], ...] = ()
    breakers: Mapping[str, str] = field(default_factory=dict)  # target → state
    outbox_backlog: float | None = None  # None: this instance has no outbox
    outbox_oldest_age: float | None = None
    consumer_lag: Mapping[str, float] = field(default_factory=dict)
    dead_letters_stored: float | None = None
    sagas_started: Mapping[str, float] = field(default_factory=dict)  # saga type → total
    sagas_finished: Mapping[tuple[str, str], float] = field(default_factory=dict)
    sagas_active: float | None = None


def _counted(route: str) -> bool:
    return route not in _QUIET_ROUTES and not route.startswith(_CONSOLE_PREFIXES)


def parse_metrics(text: str) -> Reading:
    """The console's numbers from a Prometheus text exposition (ValueError if malformed)."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    breakers: dict[str, str] = {}
    lag: dict[str, float] = {}
    started: dict[str, float] = {}
    finished: dict[tuple[str, str], float] = {}
    backlog = oldest = dead = active = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "mercato_http_requests_total":
                if _counted(labels.get("route", "")):
                    requests += value
                    if labels.get("status", "").startswith("5"):
                        errors += value
            elif name == "mercato_http_request_duration_seconds_bucket":
                if _counted(labels.get("route", "")):
                    bound = float(labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + value
            elif name == "mercato_circuit_breaker_state":
                breakers[labels.get("breaker", "")] = BREAKER_STATES.get(int(value), "unknown")
            elif name == "mercato_outbox_backlog":
                backlog = (backlog or 0.0) + value
            elif name == "mercato_outbox_oldest_unsent_age_seconds":
                oldest = max(oldest or 0.0, value)
            elif name == "mercato_consumer_lag_messages":
                lag[labels.get("consumer", "")] = value
            elif name == "mercato_dead_letters_stored":
                dead = value
            elif name == "mercato_sagas_started_total":
                saga = labels.get("saga", "")
                started[saga] = started.get(saga, 0.0) + value
            elif name == "mercato_sagas_finished_total":
                key = (labels.get("saga", ""), labels.get("outcome", ""))
                finished[key] = finished.get(key, 0.0) + value
            elif name == "mercato_sagas_active":
                active = (active or 0.0) + value
    return Reading(
        requests=requests,
        errors=errors,
        buckets=tuple(sorted(buckets.items())),
        breakers=breakers,
        outbox_backlog=backlog,
        outbox_oldest_age=oldest,
        consumer_lag=lag,
        dead_letters_stored=dead,
        sagas_started=started,
        sagas_finished=finished,
        sagas_active=active,
    )


def quantile(q: float, buckets: tuple[tuple[float, float], ...]) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated within its bucket the way
    Prometheus' `histogram_quantile` does; None without observations. In the last (`+Inf`)
    bucket the answer is the highest finite bound: nothing more is known."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
