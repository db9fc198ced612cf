"""`mercato load`'s open model: arrivals keep their schedule and latency counts from it."""

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from mercato_cli.load import (
    DEFAULT_MIX,
    Order,
    Recorder,
    open_loop,
    order_summary,
    parse_mix,
    percentile,
)

SERVICE_TIME = 0.05
RATE = 100.0
DURATION = 0.5


async def slow_server() -> tuple[web.AppRunner, str, list[float]]:
    """Serves one request at a time, SERVICE_TIME each: a platform that cannot keep up with
    RATE. Returns where it listens and the times requests reached it."""
    arrivals: list[float] = []
    one_at_a_time = asyncio.Lock()

    async def handle(_: web.Request) -> web.Response:
        arrivals.append(time.perf_counter())
        async with one_at_a_time:
            await asyncio.sleep(SERVICE_TIME)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/", arrivals


async def test_latency_counts_from_the_scheduled_time_not_from_the_send() -> None:
    runner, url, arrivals = await slow_server()
    recorder = Recorder()
    service_times: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:

            async def fire(n: int, scheduled: float) -> None:
                sent = time.perf_counter()
                async with session.get(url) as answer:
                    await answer.read()
                service_times.append(time.perf_counter() - sent)
                recorder.record("get", scheduled, str(answer.status))

            report = await open_loop(RATE, DURATION, fire, drain_timeout=30)
    finally:
        await runner.cleanup()

    total = int(RATE * DURATION)
    assert report.scheduled == total and report.dropped == 0
    stats = recorder.operations["get"]
    assert stats.ok == total
    # The server needs total * SERVICE_TIME = 2.5 s for what arrived in 0.5 s: the last
    # arrival waits about 2 s. Counted from the scheduled time, that wait is seen…
    backlog = total * SERVICE_TIME - DURATION
    assert max(stats.latencies) >= 0.8 * backlog
    assert percentile(stats.latencies, 0.99) >= 0.8 * backlog
    # …and arrivals were not held back by the slow answers: they reached the server within
    # the window, at the offered rate, not one per SERVICE_TIME.
    assert max(arrivals) - min(arrivals) <= DURATION + 1.0  # closed loop: about 2.5 s
    # Every latency covers at least its own service time, the measure never undercounts.
    assert all(latency >= SERVICE_TIME * 0.9 for latency in stats.latencies)


async def test_a_late_generator_still_charges_latency_from_the_schedule() -> None:
    """If the generator itself starts an arrival late (a busy loop), the lag is counted."""
    recorder = Recorder()
    blocked = False

    async def fire(n: int, scheduled: float) -> None:
        nonlocal blocked
        if not blocked:  # the first arrival blocks the event loop for 0.2 s
            blocked = True
            time.sleep(0.2)
        recorder.record("op", scheduled, "200")

    report = await open_loop(50.0, 0.2, fire)
    assert report.scheduled == 10
    assert report.max_start_lag_s >= 0.1
    # arrivals scheduled during the stall are charged for it
    assert max(recorder.operations["op"].latencies) >= 0.1


async def test_arrivals_beyond_max_in_flight_are_dropped_and_counted() -> None:
    release = asyncio.Event()

    async def fire(n: int, scheduled: float) -> None:
        await release.wait()

    asyncio.get_running_loop().call_later(0.5, release.set)
    report = await open_loop(100.0, 0.2, fire, max_in_flight=5, drain_timeout=5)
    assert report.scheduled == 20
    assert report.dropped == 15


async def test_the_window_lasts_the_duration_and_stragglers_are_cancelled() -> None:
    cancelled = 0

    async def fire(n: int, scheduled: float) -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    started = time.perf_counter()
    report = await open_loop(10.0, 0.3, fire, drain_timeout=0.1)
    assert 0.3 <= time.perf_counter() - started < 2
    assert cancelled == report.scheduled == 3


def test_failures_are_counted_but_have_no_latency() -> None:
    recorder = Recorder(clock=lambda: 10.0)
    recorder.record("place_order", 9.5, "202")
    recorder.record("place_order", 9.0, "503")
    recorder.record("place_order", 9.0, "error:ServerDisconnectedError")
    row = recorder.summary(duration=2.0)["place_order"]
    assert row["count"] == 3 and row["ok"] == 1
    assert row["per_s"] == 1.5
    assert row["failures"] == {"503": 1, "error:ServerDisconnectedError": 1}
    assert row["p50_ms"] == 500.0 and row["max_ms"] == 1000.0


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN


def test_orders_are_summarised_with_their_own_time_to_confirmed() -> None:
    orders = [Order(id=str(n), shopper=0) for n in range(3)]
    orders[0].update({"status": "CONFIRMED", "created_at": "2026-01-01T00:00:00Z",
                      "updated_at": "2026-01-01T00:00:00.120Z"})  # fmt: skip
    orders[1].update({"status": "REJECTED", "created_at": "2026-01-01T00:00:00Z",
                      "updated_at": "2026-01-01T00:00:05Z"})  # fmt: skip
    summary = order_summary(orders, duration=2.0)
    assert summary["placed"] == 3
    assert summary["statuses"] == {"CONFIRMED": 1, "PENDING": 1, "REJECTED": 1}
    assert summary["confirmed_per_s"] == 0.5
    assert summary["to_confirmed_p99_ms"] == 120.0


def test_the_mix_is_parsed_and_checked() -> None:
    assert parse_mix("browse=3, checkout=1", DEFAULT_MIX) == {"browse": 3.0, "checkout": 1.0}
    for bad in ("nosuch=1", "browse", "browse=x", "browse=-1", "browse=0", "browse=inf"):
        with pytest.raises(ValueError):
            parse_mix(bad, DEFAULT_MIX)


async def test_a_journey_that_raises_is_counted_not_lost() -> None:
    async def fire(n: int, scheduled: float) -> None:
        if n % 2:
            raise KeyError("id")

    report = await open_loop(40.0, 0.1, fire)
    assert report.scheduled == 4
    assert report.crashed == 2
    assert "KeyError" in report.last_crash
