"""A bulkhead caps calls in flight and fails the excess fast."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from chassis.resilience import Bulkhead, BulkheadFullError


def sample(name: str, bulkhead: str) -> float:
    return REGISTRY.get_sample_value(name, {"bulkhead": bulkhead}) or 0.0


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return f"bulkhead-{request.node.name}"


class Gate:
    """A downstream call that stays in flight until `open()` is called."""

    def __init__(self) -> None:
        self.calls = 0
        self._open = asyncio.Event()

    async def __call__(self) -> str:
        self.calls += 1
        await self._open.wait()
        return "done"

    def open(self) -> None:
        self._open.set()


class Dummy:
    async def __call__(self) -> str:
        return "dummy"


async def until_in_flight(bulkhead: Bulkhead, count: int) -> None:
    for _ in range(10):  # a few loop turns let every started call take its slot
        await asyncio.sleep(0)
    assert bulkhead.in_flight == count


async def test_the_call_past_the_cap_is_rejected_until_one_finishes(name: str) -> None:
    bulkhead = Bulkhead(name, 2)
    first, second, quick = Gate(), Gate(), Gate()
    quick.open()
    tasks = [asyncio.create_task(bulkhead.call(first)), asyncio.create_task(bulkhead.call(second))]
    await until_in_flight(bulkhead, 2)
    assert sample("mercato_bulkhead_in_flight", name) == 2

    third = Gate()
    # The guard only fires if the call was wrongly admitted and blocks.
    with pytest.raises(BulkheadFullError) as caught:
        async with asyncio.timeout(1.0):
            await bulkhead.call(third)
    assert third.calls == 0
    assert (caught.value.bulkhead, caught.value.max_concurrent) == (name, 2)
    assert sample("mercato_bulkhead_rejected_total", name) == 1

    first.open()
    assert await tasks[0] == "done"
    assert bulkhead.in_flight == 1
    assert await bulkhead.call(quick) == "done"
    assert quick.calls == 1

    second.open()
    assert await tasks[1] == "done"
    assert bulkhead.in_flight == 0
    assert sample("mercato_bulkhead_in_flight", name) == 0
    assert sample("mercato_bulkhead_rejected_total", name) == 1


async def test_a_failing_call_frees_its_slot(name: str) -> None:
    bulkhead = Bulkhead(name, 1)

    async def fail() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await bulkhead.call(fail)

    assert bulkhead.in_flight == 0
    async with bulkhead.slot():
        assert bulkhead.in_flight == 1


async def test_with_max_wait_a_call_waits_for_a_free_slot(name: str) -> None:
    bulkhead = Bulkhead(name, 1, max_wait=60.0)
    busy = Gate()
    holder = asyncio.create_task(bulkhead.call(busy))
    await until_in_flight(bulkhead, 1)

    waiter = asyncio.create_task(bulkhead.call(Dummy()))
    await asyncio.sleep(0)
    assert not waiter.done()

    busy.open()  # frees the slot: the waiter gets it without waiting out max_wait
    assert await holder == "done"
    assert await waiter == "dummy"
    assert sample("mercato_bulkhead_rejected_total", name) == 0


async def test_with_max_wait_a_call_gives_up_when_no_slot_frees(name: str) -> None:
    bulkhead = Bulkhead(name, 1, max_wait=0.001)
    busy = Gate()
    holder = asyncio.create_task(bulkhead.call(busy))
    await until_in_flight(bulkhead, 1)

    with pytest.raises(BulkheadFullError):
        async with asyncio.timeout(1.0):  # fires only if max_wait is not honoured
            await bulkhead.call(Dummy())

    assert sample("mercato_bulkhead_rejected_total", name) == 1
    busy.open()
    await holder


@pytest.mark.parametrize(("max_concurrent", "max_wait"), [(0, 0.0), (1, -1.0)])
def test_bulkhead_refuses_nonsense(max_concurrent: int, max_wait: float) -> None:
    with pytest.raises(ValueError, match="must"):
        Bulkhead("b", max_concurrent, max_wait=max_wait)
