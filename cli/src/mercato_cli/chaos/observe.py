"""Watching the platform from outside: counters scraped from every instance's /metrics, and
quiescence (nothing left in flight anywhere) after the faults are healed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import nats
from prometheus_client.parser import text_string_to_metric_families

from mercato_cli.chaos.platform import Platform, PlatformGoneError
from mercato_cli.status import is_ready

TERMINAL = frozenset({"CONFIRMED", "REJECTED", "CANCELLED"})
FINISHED_SAGAS = frozenset({"COMPLETED", "COMPENSATED"})

# counter name -> the labels kept in the report
COUNTERS = {
    "mercato_inbox_duplicates_total": ("consumer",),
    "mercato_dead_letters_total": ("consumer",),
    "mercato_circuit_breaker_transitions_total": ("breaker", "from_state", "to_state"),
    "mercato_http_requests_total": ("status",),
    "mercato_messages_consumed_total": ("outcome",),
    "mercato_bulkhead_rejected_total": ("bulkhead",),
}


def parse_counters(text: str) -> dict[tuple[str, tuple[str, ...]], float]:
    """The counters of COUNTERS in one /metrics page, summed by the labels kept."""
    found: dict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in COUNTERS:
                continue
            labels = tuple(str(sample.labels.get(k, "")) for k in COUNTERS[sample.name])
            found[(sample.name, labels)] += float(sample.value)
    return found


@dataclass
class CounterWatch:
    """Sums counters over every process that ever ran: a restarted instance starts from 0,
    so the last value scraped from each (instance, pid) is kept and the sum taken over all."""

    last: dict[tuple[str, int], dict[tuple[str, tuple[str, ...]], float]] = field(
        default_factory=dict
    )
    gateway_pids: set[tuple[str, int]] = field(default_factory=set)

    async def scrape(self, session: aiohttp.ClientSession, platform: Platform) -> None:
        try:
            processes = platform.processes()
        except PlatformGoneError:
            return

        async def one(process: Any) -> None:
            try:
                async with session.get(f"{process.url}/metrics") as answer:
                    if answer.status == 200:
                        self.last[(process.instance, process.pid)] = parse_counters(
                            await answer.text()
                        )
                        if process.service == "gateway":
                            self.gateway_pids.add((process.instance, process.pid))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass  # down, paused or restarting: its last scrape stands

        await asyncio.gather(*(one(p) for p in processes))

    async def watch(self, platform: Platform, stop: asyncio.Event, every: float = 2.0) -> None:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                await self.scrape(session, platform)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every)
            await self.scrape(session, platform)

    def total(self, name: str, where: Callable[[tuple[str, ...]], bool] = lambda _: True,
              *, gateway_only: bool = False) -> float:  # fmt: skip
        total = 0.0
        for key, counters in self.last.items():
            if gateway_only and key not in self.gateway_pids:
                continue
            for (metric, labels), value in counters.items():
                if metric == name and where(labels):
                    total += value
        return total

    def by_labels(self, name: str) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for counters in self.last.values():
            for (metric, labels), value in counters.items():
                if metric == name:
                    totals[",".join(labels)] += value
        return {k: v for k, v in sorted(totals.items()) if v}


async def _outbox_backlog(session: aiohttp.ClientSession, platform: Platform) -> float | None:
    total = 0.0
    for process in platform.processes():
        try:
            async with session.get(f"{process.url}/metrics") as answer:
                text = await answer.text()
        except (aiohttp.ClientError, TimeoutError):
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "mercato_outbox_backlog":
                    total += float(sample.value)
    return total


async def consumer_lag(broker_url: str) -> dict[str, int]:
    """Per durable consumer of Mercato's streams: messages not yet delivered plus those
    delivered and not yet acknowledged, straight from JetStream."""
    connection = await nats.connect(broker_url, connect_timeout=2, max_reconnect_attempts=0,
                                    allow_reconnect=False)  # fmt: skip
    try:
        js = connection.jetstream(timeout=3)
        lag: dict[str, int] = {}
        for stream in await js.streams_info():
            name = stream.config.name
            if not name or not name.startswith("MERCATO_"):
                continue
            for consumer in await js.consumers_info(name):
                waiting = int(consumer.num_pending or 0) + int(consumer.num_ack_pending or 0)
                lag[f"{name}/{consumer.name}"] = waiting
        return lag
    finally:
        await connection.close()


async def _orders_in_flight(session: aiohttp.ClientSession, platform: Platform) -> int | None:
    try:
        url = platform.url_of("orders") + "/internal/audit/orders"
        async with session.get(url, headers=platform.admin_headers()) as answer:
            if answer.status != 200:
                return None
            document = await answer.json()
    except (aiohttp.ClientError, TimeoutError, PlatformGoneError):
        return None
    busy = 0
    for order in document.get("items", []):
        saga = order.get("saga") or {}
        if (
            order["status"] not in TERMINAL
            or (saga and saga.get("status") not in FINISHED_SAGAS)
            or order.get("cancellation") == "requested"
        ):
            busy += 1
    return busy


async def _payments_pending(session: aiohttp.ClientSession, platform: Platform) -> int | None:
    """Payments with psp operations still due (retries, reconciliation of unknown calls)."""
    try:
        url = platform.url_of("payments") + "/internal/audit/payments"
        async with session.get(url, headers=platform.admin_headers()) as answer:
            if answer.status != 200:
                return None
            document = await answer.json()
    except (aiohttp.ClientError, TimeoutError, PlatformGoneError):
        return None
    return sum(1 for payment in document.get("items", []) if payment.get("pending"))


@dataclass
class Quiescence:
    reached: bool
    seconds: float
    last: dict[str, Any]


async def wait_for_quiescence(
    platform: Platform, *, timeout: float, say: Callable[[str], None], stable_for: int = 2
) -> Quiescence:
    """Poll until every instance is ready, every outbox is empty, no consumer lags, no
    order is in a saga or a cancellation and no payment has a psp call due: `stable_for`
    times in a row, within `timeout`."""
    started = time.monotonic()
    streak = 0
    last: dict[str, Any] = {}
    reported = 0.0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.monotonic() - started < timeout:
            last = {}
            try:
                processes = platform.processes()
                ready = await asyncio.gather(*(is_ready(session, p.url) for p in processes))
                last["not_ready"] = [p.instance for p, r in zip(processes, ready, strict=True)
                                     if not r]  # fmt: skip
                last["outbox_backlog"] = await _outbox_backlog(session, platform)
                try:
                    lag = await consumer_lag(platform.broker_url)
                    last["consumer_lag"] = {k: v for k, v in lag.items() if v}
                except Exception as error:  # the broker may still be coming back
                    last["consumer_lag"] = {"broker": repr(error)}
                last["orders_in_flight"] = await _orders_in_flight(session, platform)
                last["payments_pending"] = await _payments_pending(session, platform)
            except PlatformGoneError as error:
                last["platform"] = str(error)
            quiet = (
                "platform" not in last
                and not last["not_ready"]
                and last["outbox_backlog"] == 0
                and not last["consumer_lag"]
                and last["orders_in_flight"] == 0
                and last["payments_pending"] == 0
            )
            streak = streak + 1 if quiet else 0
            if streak >= stable_for:
                return Quiescence(True, time.monotonic() - started, last)
            if time.monotonic() - reported > 10:
                say(f"settling: {last}")
                reported = time.monotonic()
            await asyncio.sleep(1.0)
    return Quiescence(False, time.monotonic() - started, last)
