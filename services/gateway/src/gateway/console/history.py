"""The console's memory of the platform: snapshots of every instance, a few minutes deep.

A `Snapshot` is what one scrape saw: each instance's readiness and its `Reading`. The
`History` keeps the last ones in a ring and turns consecutive pairs into chart points: a
counter's increase over the time between two snapshots is a rate (a process restart resets
its counters, so a counter that went down counts from zero), and the increase of each
histogram bucket gives the p99 of the requests served in between.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from gateway.console.readings import Reading, quantile

__all__ = ["Health", "History", "Snapshot", "increase"]


@dataclass(frozen=True)
class Health:
    """An instance's `/readyz` answer: ready or not, its named checks, or why it did not
    answer at all."""

    ready: bool
    checks: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    at: float  # seconds since the epoch
    services: Mapping[str, str]  # instance id → service
    health: Mapping[str, Health]
    readings: Mapping[str, Reading]  # instances whose /metrics answered


def increase(before: float, after: float) -> float:
    """How much a counter grew; after a restart (it went down) all of its current value."""
    return after - before if after >= before else after


def _bucket_increase(
    before: tuple[tuple[float, float], ...], after: tuple[tuple[float, float], ...]
) -> tuple[tuple[float, float], ...]:
    old = dict(before)
    if any(count < old.get(bound, 0.0) for bound, count in after):
        return after  # restarted: everything it counted is new
    return tuple((bound, count - old.get(bound, 0.0)) for bound, count in after)


def _add_buckets(
    total: dict[float, float], buckets: Iterable[tuple[float, float]]
) -> dict[float, float]:
    for bound, count in buckets:
        total[bound] = total.get(bound, 0.0) + count
    return total


def _finished(then: Reading, now: Reading, outcome: str) -> float:
    key = ("checkout", outcome)
    return increase(then.sagas_finished.get(key, 0.0), now.sagas_finished.get(key, 0.0))


@dataclass
class _Interval:
    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)


class History:
    """The last `keep` snapshots, oldest first."""

    def __init__(self, *, keep: int = 180) -> None:
        self._snapshots: deque[Snapshot] = deque(maxlen=keep)

    def add(self, snapshot: Snapshot) -> None:
        self._snapshots.append(snapshot)

    def latest(self) -> Snapshot | None:
        return self._snapshots[-1] if self._snapshots else None

    def __len__(self) -> int:
        return len(self._snapshots)

    def series(self, *, since: float | None = None) -> dict[str, Any]:
        """Chart points, one per pair of consecutive snapshots (at the later one's time):
        per service the request rate (req/s), the error rate (5xx/s) and the p99 latency
        (ms, None when nothing was served); for the whole platform checkouts started,
        completed and compensated per second (the orders service's saga counters)."""
        snapshots = [s for s in self._snapshots if since is None or s.at >= since]
        times: list[float] = []
        services = sorted({name for s in snapshots for name in s.services.values()})
        per_service: dict[str, dict[str, list[float | None]]] = {
            name: {"rate": [], "errors": [], "p99_ms": []} for name in services
        }
        checkouts: dict[str, list[float | None]] = {
            "started": [],
            "completed": [],
            "compensated": [],
        }
        for before, after in pairwise(snapshots):
            elapsed = after.at - before.at
            if elapsed <= 0:
                continue
            times.append(round(after.at, 3))
            intervals: dict[str, _Interval] = {name: _Interval() for name in services}
            started = completed = compensated = 0.0
            for instance, now in after.readings.items():
                then = before.readings.get(instance)
                service = after.services.get(instance)
                if then is None or service is None:
                    continue  # a new instance: a rate needs two readings
                part = intervals[service]
                part.requests += increase(then.requests, now.requests)
                part.errors += increase(then.errors, now.errors)
                _add_buckets(part.buckets, _bucket_increase(then.buckets, now.buckets))
                started += increase(
                    then.sagas_started.get("checkout", 0.0), now.sagas_started.get("checkout", 0.0)
                )
                completed += _finished(then, now, "completed")
                compensated += _finished(then, now, "compensated")
            for name, part in intervals.items():
                p99 = quantile(0.99, tuple(sorted(part.buckets.items())))
                series = per_service[name]
                series["rate"].append(round(part.requests / elapsed, 3))
                series["errors"].append(round(part.errors / elapsed, 3))
                series["p99_ms"].append(None if p99 is None else round(p99 * 1000, 2))
            checkouts["started"].append(round(started / elapsed, 3))
            checkouts["completed"].append(round(completed / elapsed, 3))
            checkouts["compensated"].append(round(compensated / elapsed, 3))
        return {"times": times, "services": per_service, "checkouts": checkouts}
