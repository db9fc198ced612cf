import asyncio
import random
from collections import Counter

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from chassis.discovery import LoadBalancer, NoInstancesError, ServiceInstance
from chassis.resilience import ManualClock


def fleet(count: int, service: str = "catalog") -> list[ServiceInstance]:
    return [
        ServiceInstance(service=service, instance_id=f"i{n}", host="127.0.0.1", port=8000 + n)
        for n in range(count)
    ]


def fail(balancer: LoadBalancer, instance: ServiceInstance, times: int) -> None:
    for _ in range(times):
        balancer.acquire(instance)
        balancer.release(instance, ok=False)


def ejections(service: str) -> float:
    return REGISTRY.get_sample_value("mercato_outlier_ejections_total", {"target": service}) or 0


def test_no_instances_is_an_error_naming_the_service() -> None:
    with pytest.raises(NoInstancesError, match="'catalog'") as info:
        LoadBalancer("catalog").pick([])
    assert info.value.service == "catalog"


def test_p2c_prefers_the_less_loaded_instance() -> None:
    a, b, c = instances = fleet(3)
    balancer = LoadBalancer("catalog", rng=random.Random(7))
    for _ in range(3):
        balancer.acquire(b)
    for _ in range(10):
        balancer.acquire(c)
    picks = Counter(balancer.pick(instances).instance_id for _ in range(300))
    # The busiest instance loses every pair it is drawn in; b only wins against c.
    assert picks["i2"] == 0
    assert picks["i0"] > 1.5 * picks["i1"] > 0
    assert balancer.pick([a, c]) is a


def test_p2c_keeps_outstanding_requests_even() -> None:
    instances = fleet(4)
    balancer = LoadBalancer("catalog", rng=random.Random(1))
    for _ in range(200):
        balancer.acquire(balancer.pick(instances))
    loads = [balancer.outstanding(inst) for inst in instances]
    assert sum(loads) == 200
    assert max(loads) - min(loads) <= 2


def test_round_robin_spreads_evenly() -> None:
    instances = fleet(4)
    balancer = LoadBalancer("catalog", strategy="round_robin")
    picks = Counter(balancer.pick(instances).instance_id for _ in range(400))
    assert picks == {"i0": 100, "i1": 100, "i2": 100, "i3": 100}


def test_ejects_after_consecutive_failures_and_counts_it() -> None:
    service = "eject-after-n"
    instances = fleet(4, service)
    bad = instances[0]
    balancer = LoadBalancer(service, clock=ManualClock(), rng=random.Random(0))
    balancer.pick(instances)
    fail(balancer, bad, 4)
    assert not balancer.is_ejected(bad)
    with capture_logs() as logs:
        fail(balancer, bad, 1)
    assert balancer.is_ejected(bad)
    assert ejections(service) == 1
    assert [log["event"] for log in logs] == ["outlier ejected"]
    assert logs[0]["instance_id"] == "i0"
    assert logs[0]["ejection_seconds"] == 30.0
    assert all(balancer.pick(instances) is not bad for _ in range(100))


def test_a_success_resets_the_consecutive_failure_count() -> None:
    instances = fleet(4)
    balancer = LoadBalancer("catalog", clock=ManualClock())
    balancer.pick(instances)
    fail(balancer, instances[0], 4)
    balancer.acquire(instances[0])
    balancer.release(instances[0], ok=True)
    fail(balancer, instances[0], 4)
    assert not balancer.is_ejected(instances[0])


def test_ejected_instance_returns_after_a_time_that_grows_with_each_ejection() -> None:
    clock = ManualClock()
    instances = fleet(4)
    bad = instances[1]
    balancer = LoadBalancer("catalog", clock=clock, max_ejection_time=70)
    balancer.pick(instances)
    for expected in (30, 60, 70):  # base x times ejected, capped at max_ejection_time
        fail(balancer, bad, 5)
        clock.advance(expected - 0.001)
        assert balancer.is_ejected(bad)
        clock.advance(0.001)
        assert not balancer.is_ejected(bad)
        assert any(balancer.pick(instances) is bad for _ in range(50))


def test_never_ejects_the_last_instance() -> None:
    [only] = instances = fleet(1)
    balancer = LoadBalancer("catalog", clock=ManualClock())
    balancer.pick(instances)
    fail(balancer, only, 50)
    assert not balancer.is_ejected(only)
    assert balancer.pick(instances) is only


def test_never_ejects_more_than_max_ejection_percent() -> None:
    two = fleet(2)
    balancer = LoadBalancer("catalog", clock=ManualClock())
    balancer.pick(two)
    for inst in two:
        fail(balancer, inst, 5)
    assert [balancer.is_ejected(inst) for inst in two] == [True, False]

    ten = fleet(10)
    balancer = LoadBalancer("catalog", clock=ManualClock(), max_ejection_percent=30)
    balancer.pick(ten)
    for inst in ten:
        fail(balancer, inst, 5)
    assert sum(balancer.is_ejected(inst) for inst in ten) == 3


def test_when_every_listed_instance_is_ejected_they_are_all_candidates_again() -> None:
    instances = fleet(3)
    balancer = LoadBalancer("catalog", clock=ManualClock())
    balancer.pick(instances)
    fail(balancer, instances[0], 5)
    assert balancer.is_ejected(instances[0])
    # The registry now lists only the ejected one: better to try it than to fail.
    assert balancer.pick([instances[0]]) is instances[0]


def test_track_counts_outstanding_and_judges_by_exception() -> None:
    instances = fleet(2)
    balancer = LoadBalancer("catalog", clock=ManualClock(), consecutive_failures=2)
    balancer.pick(instances)
    with balancer.track(instances[0]) as inst:
        assert balancer.outstanding(inst) == 1
    assert balancer.outstanding(instances[0]) == 0
    for _ in range(2):
        with pytest.raises(ConnectionError), balancer.track(instances[0]):
            raise ConnectionError
    assert balancer.is_ejected(instances[0])


async def test_cancellation_is_not_the_instance_s_fault() -> None:
    instances = fleet(2)
    balancer = LoadBalancer("catalog", clock=ManualClock(), consecutive_failures=1)
    balancer.pick(instances)

    async def call() -> None:
        with balancer.track(instances[0]):
            await asyncio.sleep(10)

    task = asyncio.create_task(call())
    await asyncio.sleep(0)
    assert balancer.outstanding(instances[0]) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert balancer.outstanding(instances[0]) == 0
    assert not balancer.is_ejected(instances[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "random"}, "strategy"),
        ({"consecutive_failures": 0}, "consecutive_failures"),
        ({"base_ejection_time": 0}, "base_ejection_time"),
        ({"base_ejection_time": 10, "max_ejection_time": 5}, "max_ejection_time"),
        ({"max_ejection_percent": 101}, "max_ejection_percent"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadBalancer("catalog", **kwargs)  # type: ignore[arg-type]
