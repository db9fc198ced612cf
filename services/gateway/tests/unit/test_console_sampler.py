"""The console's sampler: idle gateways scrape nothing."""

from __future__ import annotations

import asyncio

from chassis.discovery import InMemoryRegistry
from gateway.console.sampler import Sampler, unsampled_traceparent


async def test_the_sampler_starts_on_first_use_and_stops_once_nobody_looks() -> None:
    now = [100.0]
    sampler = Sampler(InMemoryRegistry(), interval=0.01, idle_after=5.0, clock=lambda: now[0])
    try:
        assert not sampler.running and len(sampler.history) == 0
        snapshot = await sampler.latest()  # the first use starts it and waits for a scrape
        assert sampler.running and snapshot.services == {} and snapshot.at == 100.0
        now[0] = 106.0  # nobody asked for 6 s
        for _ in range(200):
            if not sampler.running:
                break
            await asyncio.sleep(0.01)
        assert not sampler.running
        scraped = len(sampler.history)
        await asyncio.sleep(0.05)
        assert len(sampler.history) == scraped  # stopped means stopped
        sampler.touch()  # and the next use starts it again
        assert sampler.running
    finally:
        await sampler.close()
    assert not sampler.running


def test_the_console_s_trace_context_asks_not_to_be_recorded() -> None:
    version, trace_id, span_id, flags = unsampled_traceparent().split("-")
    assert (version, flags) == ("00", "00")
    assert len(trace_id) == 32 and len(span_id) == 16
    assert unsampled_traceparent() != unsampled_traceparent()
