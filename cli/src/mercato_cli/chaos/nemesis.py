"""The nemesis: faults injected on a schedule drawn from the seed, then healed.

| kind | what happens, for real |
|---|---|
| kill | SIGKILL a random instance of a random service; the supervisor restarts it |
| pause | SIGSTOP a random consumer instance for longer than its ack wait, then SIGCONT |
| broker | nats-server is stopped (SIGKILL and SIGTERM in turn); the supervisor restarts it |
| psp | the psp's knobs: latency past payments' timeout, an error burst, or answers held back |
| partition | one service's broker link is black-holed at the fault proxy, then healed |
| latency | one service's broker link is slowed (delay ± jitter) at the fault proxy |

(psp: "held back" is its timeout-after-charge: the charge is made, the answer never comes.)

Faults of one kind are spread evenly over the fault window (one per slot, at a random
moment in it); kinds run independently, so they overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from mercato_cli.chaos.platform import Platform, send_signal
from mercato_cli.topology import SERVICES

CONSUMERS = ("orders", "inventory", "payments", "notifications")
LINKED = tuple(spec.name for spec in SERVICES)
ACK_WAIT = 30.0  # the chassis' RetryPolicy default, which every service uses
PSP_TIMEOUT = 5.0  # payments' default psp_timeout
CALM_PSP = {"latency_ms": 0, "error_rate": 0.0, "timeout_after_charge_rate": 0.0,
            "timeout_seconds": 7.0}  # fmt: skip
PROXY_KINDS = ("partition", "latency")


@dataclass
class Fault:
    kind: str
    at: float  # seconds into the fault window
    duration: float  # 0 for instant faults (kill, broker)
    params: dict[str, Any] = field(default_factory=dict)
    # filled in when injected:
    target: str | None = None
    started: float | None = None  # seconds since the run began
    ended: float | None = None
    injected: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "target": self.target, "params": self.params,
            "started": None if self.started is None else round(self.started, 3),
            "ended": None if self.ended is None else round(self.ended, 3),
            "injected": self.injected, "error": self.error,
        }  # fmt: skip


def plan(
    kinds: tuple[str, ...], window: float, *, per_minute: float, rng: random.Random,
    ack_wait: float = ACK_WAIT,
) -> list[Fault]:  # fmt: skip
    """The schedule: for each kind, `per_minute` faults per minute of `window` (at least one),
    each in its own slot, with its duration and parameters drawn from `rng`."""
    faults: list[Fault] = []
    count = max(1, round(window / 60 * per_minute))
    for kind in kinds:
        for n in range(count):
            duration, params = _shape(kind, rng, ack_wait)
            latest = max(0.0, window - duration - 1.0)  # healed inside the window
            slot = latest / count
            at = min(latest, slot * n + rng.uniform(0, slot))
            faults.append(Fault(kind, round(at, 3), round(duration, 3), params))
    return sorted(faults, key=lambda f: f.at)


def _shape(kind: str, rng: random.Random, ack_wait: float) -> tuple[float, dict[str, Any]]:
    if kind == "kill":
        return 0.0, {"service": rng.choice(LINKED), "pick": rng.random()}
    if kind == "pause":
        return ack_wait + rng.uniform(2, 5), {"service": rng.choice(CONSUMERS),
                                              "pick": rng.random()}  # fmt: skip
    if kind == "broker":
        return 0.0, {"signal": rng.choice(("SIGKILL", "SIGTERM"))}
    if kind == "psp":
        mode = rng.choice(("latency", "errors", "timeout_after_charge"))
        knobs = dict(CALM_PSP)
        if mode == "latency":
            knobs["latency_ms"] = int((PSP_TIMEOUT + rng.uniform(0.5, 2)) * 1000)
        elif mode == "errors":
            knobs["error_rate"] = round(rng.uniform(0.6, 1.0), 2)
        else:
            knobs["timeout_after_charge_rate"] = round(rng.uniform(0.5, 1.0), 2)
            knobs["timeout_seconds"] = PSP_TIMEOUT + 2
        return rng.uniform(4, 8), {"mode": mode, "knobs": knobs}
    if kind == "partition":
        return rng.uniform(3, 8), {"link": rng.choice(LINKED)}
    if kind == "latency":
        delay = rng.choice((50, 150, 300, 600))
        return rng.uniform(4, 10), {"link": rng.choice(LINKED), "delay_ms": delay,
                                    "jitter_ms": delay // 2}  # fmt: skip
    raise ValueError(f"unknown fault kind {kind!r}")


class Nemesis:
    def __init__(self, platform: Platform, *, now: Callable[[], float],
                 say: Callable[[str], None]) -> None:  # fmt: skip
        self.platform = platform
        self.now = now
        self.say = say
        self.faults: list[Fault] = []
        self._paused: set[int] = set()
        self._faulted_links: set[str] = set()
        self._session: aiohttp.ClientSession | None = None

    async def run(self, schedule: list[Fault], *, window_start: float) -> None:
        """Inject every fault at its time (relative to `window_start`, a `now()` value)."""
        self.faults = schedule
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            tasks = [asyncio.create_task(self._one(f, window_start)) for f in schedule]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self.heal(session)
                self._session = None

    async def heal(self, session: aiohttp.ClientSession | None = None) -> list[str]:
        """Undo every fault that may still hold: resume paused processes, calm the psp,
        let every broker link pass. What could not be healed is returned."""
        problems: list[str] = []
        for pid in list(self._paused):
            send_signal(pid, signal.SIGCONT)
            self._paused.discard(pid)
        own = session is None
        if own:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        assert session is not None
        try:
            for attempt in range(20):
                problems = []
                try:
                    await self.platform.set_psp_faults(session, CALM_PSP)
                except (aiohttp.ClientError, TimeoutError, RuntimeError) as error:
                    problems.append(f"psp: {error!r}")
                if self.platform.fault_proxy() is not None:
                    try:
                        await self.platform.set_link(session, None, {"mode": "pass"})
                    except (aiohttp.ClientError, TimeoutError, RuntimeError) as error:
                        problems.append(f"fault proxy: {error!r}")
                if not problems:
                    break
                await asyncio.sleep(0.5 + attempt * 0.25)  # the psp may be restarting
        finally:
            if own:
                await session.close()
        return problems

    async def _one(self, fault: Fault, window_start: float) -> None:
        delay = window_start + fault.at - self.now()
        if delay > 0:
            await asyncio.sleep(delay)
        fault.started = self.now()
        try:
            await getattr(self, f"_{fault.kind}")(fault)
        except Exception as error:  # one fault failing to inject must not stop the others
            fault.error = repr(error)
        fault.ended = self.now()
        state = "injected" if fault.injected else f"NOT injected ({fault.error})"
        self.say(f"nemesis: {fault.kind} {fault.target or ''} {state}")

    def _pick(self, service: str, pick: float, *, among: tuple[str, ...] = ()) -> Any:
        """An instance of `service` that is not paused; when every one is, of the next
        service of `among` that has one (so a fault is not lost to an earlier one)."""
        start = among.index(service) + 1 if service in among else 0
        for name in dict.fromkeys((service, *among[start:], *among[:start])):
            processes = [p for p in self.platform.processes(name) if p.pid not in self._paused]
            if processes:
                return processes[min(len(processes) - 1, int(pick * len(processes)))]
        return None

    async def _kill(self, fault: Fault) -> None:
        process = self._pick(fault.params["service"], fault.params["pick"], among=LINKED)
        if process is None:
            fault.error = "no running instance to kill"
            return
        fault.target = process.instance
        fault.injected = send_signal(process.pid, signal.SIGKILL)

    async def _pause(self, fault: Fault) -> None:
        process = self._pick(fault.params["service"], fault.params["pick"], among=CONSUMERS)
        if process is None:
            fault.error = "every instance is paused already"
            return
        fault.target = process.instance
        if not send_signal(process.pid, signal.SIGSTOP):
            fault.error = "the process was gone"
            return
        fault.injected = True
        self._paused.add(process.pid)
        try:
            await asyncio.sleep(fault.duration)
        finally:
            send_signal(process.pid, signal.SIGCONT)
            self._paused.discard(process.pid)

    async def _broker(self, fault: Fault) -> None:
        pid = self.platform.nats_pid()
        fault.target = "nats"
        if pid is None:
            fault.error = "no broker pid"
            return
        fault.injected = send_signal(pid, signal.Signals[fault.params["signal"]])

    async def _psp(self, fault: Fault) -> None:
        assert self._session is not None
        fault.target = f"psp:{fault.params['mode']}"
        for attempt in range(10):  # the psp may be restarting after a kill
            try:
                await self.platform.set_psp_faults(self._session, fault.params["knobs"])
                break
            except (aiohttp.ClientError, TimeoutError, RuntimeError):
                if attempt == 9:
                    raise
                await asyncio.sleep(0.5)
        fault.injected = True
        try:
            await asyncio.sleep(fault.duration)
        finally:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
                await self.platform.set_psp_faults(self._session, CALM_PSP)

    async def _link(self, fault: Fault, body: dict[str, Any]) -> None:
        assert self._session is not None
        # One fault per link at a time (healing one must not end another): the drawn link,
        # or the next one that is free.
        start = LINKED.index(fault.params["link"])
        free = [n for n in LINKED[start:] + LINKED[:start] if n not in self._faulted_links]
        if not free:
            fault.error = "every link is faulted already"
            return
        link = free[0]
        fault.target = f"{link}<->broker"
        self._faulted_links.add(link)
        try:
            await self.platform.set_link(self._session, link, body)
            fault.injected = True
            await asyncio.sleep(fault.duration)
        finally:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
                await self.platform.set_link(self._session, link, {"mode": "pass"})
            self._faulted_links.discard(link)

    async def _partition(self, fault: Fault) -> None:
        await self._link(fault, {"mode": "blackhole"})

    async def _latency(self, fault: Fault) -> None:
        body = {"mode": "delay", "delay_ms": fault.params["delay_ms"],
                "jitter_ms": fault.params["jitter_ms"]}  # fmt: skip
        await self._link(fault, body)
