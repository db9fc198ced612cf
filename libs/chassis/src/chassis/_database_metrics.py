"""Connection pool use of every `Database` in the process, read when Prometheus scrapes.

Reading the pool's counters at scrape time costs nothing per query (no pool event hooks)
and is never stale. Engines are held weakly: a disposed and dropped `Database` leaves the
metrics by itself. Several databases in one process (tests) add up per pool role.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

__all__ = ["track_pool"]


class _PoolUse(Collector):
    def __init__(self) -> None:
        self._engines: weakref.WeakKeyDictionary[AsyncEngine, str] = weakref.WeakKeyDictionary()

    def track(self, engine: AsyncEngine, role: str) -> None:
        self._engines[engine] = role

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            "in_use": GaugeMetricFamily(
                "mercato_db_pool_connections_in_use",
                "Database connections checked out of the pool now, by pool (main, writer)",
                labels=["pool"],
            ),
            "idle": GaugeMetricFamily(
                "mercato_db_pool_connections_idle",
                "Open database connections idle in the pool, by pool",
                labels=["pool"],
            ),
            "max": GaugeMetricFamily(
                "mercato_db_pool_connections_max",
                "The most connections the pool opens (size plus overflow), by pool",
                labels=["pool"],
            ),
        }
        totals: dict[str, dict[str, float]] = {}
        for engine, role in list(self._engines.items()):
            pool = engine.pool  # replaced by dispose(): always read the current one
            if not isinstance(pool, QueuePool):
                continue  # in-memory SQLite: one static connection, nothing to watch
            overflow = int(getattr(pool, "_max_overflow", 0))
            use = totals.setdefault(role, {"in_use": 0.0, "idle": 0.0, "max": 0.0})
            use["in_use"] += pool.checkedout()
            use["idle"] += pool.checkedin()
            use["max"] += math.inf if overflow < 0 else pool.size() + overflow
        for role, use in sorted(totals.items()):
            for key, family in families.items():
                family.add_metric([role], use[key])
        yield from families.values()


_POOLS = _PoolUse()
REGISTRY.register(_POOLS)


def track_pool(engine: AsyncEngine, role: str) -> None:
    """Report `engine`'s pool in the `mercato_db_pool_*` gauges, labelled `pool=role`."""
    _POOLS.track(engine, role)
