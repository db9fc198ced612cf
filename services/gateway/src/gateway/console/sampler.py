"""Scraping every instance the registry lists: `/readyz` and `/metrics`, concurrently.

The sampler starts on the console's first request and scrapes every `interval` seconds
into the `History`; once nobody has used the console for `idle_after` seconds it stops, so
an idle gateway scrapes nothing. Each instance gets a short timeout: one hung instance makes
its own row "not answering", never the whole page late.

The console's calls carry an unsampled `traceparent`, so the services record no spans for
them (sampling follows the caller), like probes: watching must not bury the shop's traces.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable

import aiohttp
import orjson
import structlog

from chassis.discovery import Registry, ServiceInstance
from gateway.console.history import Health, History, Snapshot
from gateway.console.readings import Reading, parse_metrics

__all__ = ["Sampler", "unsampled_traceparent"]

log = structlog.get_logger("gateway.console")


def unsampled_traceparent() -> str:
    """A W3C `traceparent` whose sampled flag is off: the callee records nothing."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


class Sampler:
    def __init__(
        self,
        registry: Registry,
        *,
        interval: float = 5.0,
        keep: int = 180,
        idle_after: float = 600.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.interval = interval
        self.idle_after = idle_after
        self.timeout = timeout
        self.history = History(keep=keep)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()
        self._last_used = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def session(self) -> aiohttp.ClientSession:
        """The console's HTTP session to instances (made on first use, in the loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                json_serialize=lambda value: orjson.dumps(value).decode(),
            )
        return self._session

    def touch(self) -> None:
        """The console was used: start sampling if it was not running."""
        self._last_used = self._clock()
        if not self.running:
            self._first = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="console-sampler")

    async def latest(self) -> Snapshot:
        """The newest snapshot, waiting for the first scrape after a start."""
        self.touch()
        found = self.history.latest()
        if found is not None and self._clock() - found.at < 2 * self.interval + self.timeout:
            return found
        await self._first.wait()
        latest = self.history.latest()
        assert latest is not None
        return latest

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            started = self._clock()
            try:
                self.history.add(await self.scrape())
            except Exception:  # a broken registry must not kill the sampler for good
                log.exception("console_scrape_failed")
            self._first.set()
            if self._clock() - self._last_used > self.idle_after:
                log.info("console_sampler_idle")
                return
            await asyncio.sleep(max(0.0, self.interval - (self._clock() - started)))

    async def scrape(self) -> Snapshot:
        instances = await self.registry.all_instances()
        results = await asyncio.gather(*(self._scrape_one(i) for i in instances))
        health: dict[str, Health] = {}
        readings: dict[str, Reading] = {}
        for instance, (ready, reading) in zip(instances, results, strict=True):
            health[instance.instance_id] = ready
            if reading is not None:
                readings[instance.instance_id] = reading
        return Snapshot(
            at=self._clock(),
            services={i.instance_id: i.service for i in instances},
            health=health,
            readings=readings,
        )

    async def _scrape_one(self, instance: ServiceInstance) -> tuple[Health, Reading | None]:
        ready, metrics = await asyncio.gather(
            self.readiness(instance), self._metrics(instance), return_exceptions=False
        )
        return ready, metrics

    async def readiness(self, instance: ServiceInstance) -> Health:
        """The instance's `/readyz`, now."""
        headers = {"traceparent": unsampled_traceparent()}
        try:
            async with self.session().get(f"{instance.url}/readyz", headers=headers) as answer:
                body = await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as error:
            return Health(ready=False, error=_why(error))
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = {}
        checks = document.get("checks") if isinstance(document, dict) else None
        return Health(
            ready=status == 200,
            checks={str(k): str(v) for k, v in checks.items()} if isinstance(checks, dict) else {},
            error=None if status == 200 else f"HTTP {status}",
        )

    async def _metrics(self, instance: ServiceInstance) -> Reading | None:
        headers = {"traceparent": unsampled_traceparent()}
        try:
            async with self.session().get(f"{instance.url}/metrics", headers=headers) as answer:
                if answer.status != 200:
                    return None
                text = await answer.text()
        except (aiohttp.ClientError, TimeoutError):
            return None
        try:
            return parse_metrics(text)
        except (ValueError, KeyError):
            log.warning("console_metrics_unreadable", instance=instance.instance_id)
            return None


def _why(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, aiohttp.ClientConnectorError):
        return "connection refused"
    return type(error).__name__
