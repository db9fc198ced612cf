"""Client-side load balancing over a service's instances, with passive outlier ejection.

Picking is power of two choices on outstanding requests (two random instances, the less
busy wins), which tracks load almost as well as "least busy of all" without herding
every caller onto the same instance; round robin is there for comparison.

Outlier ejection follows Envoy's consecutive-5xx detector: after `consecutive_failures`
failures in a row an instance is left out for `base_ejection_time` times the number of
times it was ejected (capped at `max_ejection_time`), then it comes back on its own. At
most `max_ejection_percent` of the instances are out at once, and never the last one.
What counts as a failure is the caller's call: report it with `release(ok=False)`.

State is per instance id, lives in one event loop, and is not thread-safe.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import structlog
from prometheus_client import Counter

from chassis.discovery._instance import ServiceInstance
from chassis.discovery.errors import NoInstancesError
from chassis.resilience import SYSTEM_CLOCK, Clock

__all__ = ["OUTLIER_EJECTIONS", "BalancingStrategy", "LoadBalancer"]

OUTLIER_EJECTIONS = Counter(
    "mercato_outlier_ejections_total",
    "Instances ejected from load balancing after consecutive failures, by the service "
    "they belong to (`target`: `service` is the scraped instance's own label)",
    ["target"],
)

BalancingStrategy = Literal["p2c", "round_robin"]


@dataclass(slots=True)
class _InstanceState:
    outstanding: int = 0
    consecutive_failures: int = 0
    times_ejected: int = 0
    ejected_until: float | None = None


class LoadBalancer:
    """Picks an instance of one service per request and watches how they do.

    Typical use, with `track` reporting an exception as a failure:

        with balancer.track(balancer.pick(await registry.instances("catalog"))) as inst:
            ...call inst.url...
    """

    def __init__(
        self,
        service: str,
        *,
        strategy: BalancingStrategy = "p2c",
        rng: random.Random | None = None,
        clock: Clock = SYSTEM_CLOCK,
        consecutive_failures: int = 5,
        base_ejection_time: float = 30.0,
        max_ejection_time: float = 300.0,
        max_ejection_percent: float = 50.0,
    ) -> None:
        if strategy not in ("p2c", "round_robin"):
            raise ValueError(f"unknown strategy {strategy!r}")
        if consecutive_failures < 1:
            raise ValueError("consecutive_failures must be at least 1")
        if base_ejection_time <= 0 or max_ejection_time < base_ejection_time:
            raise ValueError("need 0 < base_ejection_time <= max_ejection_time")
        if not 0 <= max_ejection_percent <= 100:
            raise ValueError("max_ejection_percent must be within 0..100")
        self.service = service
        self.strategy = strategy
        self._rng = rng or random.Random()
        self._clock = clock
        self._consecutive_failures = consecutive_failures
        self._base_ejection_time = base_ejection_time
        self._max_ejection_time = max_ejection_time
        self._max_ejection_percent = max_ejection_percent
        self._states: dict[str, _InstanceState] = {}
        self._known: set[str] = set()  # the instance ids of the last pick: the host set
        self._next = 0  # round-robin position
        self._log = structlog.get_logger("chassis.discovery").bind(service=service)

    def pick(
        self, instances: Sequence[ServiceInstance], *, avoid: Collection[str] = ()
    ) -> ServiceInstance:
        """Choose one of `instances` (the service's current list) for the next request.

        Ejected instances are skipped unless every given instance is ejected, in which
        case all of them are candidates again: a guess beats certain failure. Instance ids
        in `avoid` (e.g. those a retry already tried) are skipped while others remain.
        """
        if not instances:
            raise NoInstancesError(self.service)
        self._known = {inst.instance_id for inst in instances}
        self._forget_departed()
        now = self._clock.monotonic()
        candidates = [inst for inst in instances if not self._ejected(inst.instance_id, now)]
        if not candidates:
            candidates = list(instances)
        if avoid:
            candidates = [
                inst for inst in candidates if inst.instance_id not in avoid
            ] or candidates
        if len(candidates) == 1:
            return candidates[0]
        if self.strategy == "round_robin":
            chosen = candidates[self._next % len(candidates)]
            self._next += 1
            return chosen
        first, second = self._rng.sample(candidates, 2)
        if self.outstanding(second) < self.outstanding(first):
            return second
        return first

    def acquire(self, instance: ServiceInstance) -> None:
        """Count a request to `instance` as outstanding until `release`."""
        self._state(instance.instance_id).outstanding += 1

    def release(self, instance: ServiceInstance, *, ok: bool) -> None:
        """End a request started with `acquire`; `ok=False` counts towards ejection."""
        self._finish(instance, ok=ok)

    @contextmanager
    def track(self, instance: ServiceInstance) -> Iterator[ServiceInstance]:
        """`acquire` now, `release` on exit: ok unless the body raised.

        Cancellation releases without a verdict: the caller gave up, the instance did
        not fail.
        """
        self.acquire(instance)
        try:
            yield instance
        except Exception:
            self._finish(instance, ok=False)
            raise
        except BaseException:  # CancelledError, KeyboardInterrupt...: not the instance's fault
            self._finish(instance, ok=None)
            raise
        self._finish(instance, ok=True)

    def outstanding(self, instance: ServiceInstance) -> int:
        """Requests to `instance` acquired and not yet released."""
        state = self._states.get(instance.instance_id)
        return state.outstanding if state else 0

    def is_ejected(self, instance: ServiceInstance) -> bool:
        """Whether `instance` is currently left out of picks."""
        return self._ejected(instance.instance_id, self._clock.monotonic())

    # -- internals --------------------------------------------------------------------

    def _state(self, instance_id: str) -> _InstanceState:
        state = self._states.get(instance_id)
        if state is None:
            state = self._states[instance_id] = _InstanceState()
        return state

    def _forget_departed(self) -> None:
        # Bounded memory under churn: keep state only for listed or busy instances.
        for instance_id in [i for i in self._states if i not in self._known]:
            if self._states[instance_id].outstanding == 0:
                del self._states[instance_id]

    def _ejected(self, instance_id: str, now: float) -> bool:
        state = self._states.get(instance_id)
        if state is None or state.ejected_until is None:
            return False
        if now < state.ejected_until:
            return True
        state.ejected_until = None
        state.consecutive_failures = 0
        self._log.info("outlier returned", instance_id=instance_id)
        return False

    def _finish(self, instance: ServiceInstance, *, ok: bool | None) -> None:
        state = self._state(instance.instance_id)
        state.outstanding = max(0, state.outstanding - 1)
        if ok is None:
            return
        if ok:
            state.consecutive_failures = 0
            return
        state.consecutive_failures += 1
        now = self._clock.monotonic()
        if (
            state.consecutive_failures >= self._consecutive_failures
            and not self._ejected(instance.instance_id, now)
            and self._may_eject(instance.instance_id, now)
        ):
            self._eject(instance.instance_id, state, now)

    def _may_eject(self, instance_id: str, now: float) -> bool:
        hosts = self._known | {instance_id}
        ejected = sum(1 for host in hosts if self._ejected(host, now))
        after = ejected + 1
        return after < len(hosts) and after * 100 <= self._max_ejection_percent * len(hosts)

    def _eject(self, instance_id: str, state: _InstanceState, now: float) -> None:
        state.times_ejected += 1
        duration = min(self._base_ejection_time * state.times_ejected, self._max_ejection_time)
        state.ejected_until = now + duration
        state.consecutive_failures = 0
        OUTLIER_EJECTIONS.labels(self.service).inc()
        self._log.warning(
            "outlier ejected",
            instance_id=instance_id,
            ejection_seconds=duration,
            times_ejected=state.times_ejected,
        )
